fn main() {
    // The container init mode (`peapod __init <bundle>`) must run before anything else: it is
    // pid 1 of a fresh container and must not start runtimes or parse the CLI.
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() == Some(std::ffi::OsStr::new(peapod::container::runtime::INIT_ARG)) {
        let bundle = args
            .next()
            .map(std::path::PathBuf::from)
            .unwrap_or_default();
        peapod::container::runtime::init_main(&bundle);
    }
    println!("peapod: under construction");
}
