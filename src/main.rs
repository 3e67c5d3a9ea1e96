fn main() {
    println!("peapod: under construction");
}
