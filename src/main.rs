//! The `peapod` binary: hidden modes for the processes peapod re-executes itself as, then the CLI.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code = match args.get(1).map(String::as_str) {
        Some(peapod::sandbox::pause::SANDBOX_VERB) => peapod::sandbox::pause::pause_main(),
        Some("__init") => match args.get(2) {
            Some(bundle) => peapod::container::runtime::init_main(std::path::Path::new(bundle)),
            None => 127,
        },
        Some(peapod::pod::supervisor::SUPERVISE_VERB) => match args.get(2) {
            Some(uid) => peapod::pod::supervisor::main(uid),
            None => 2,
        },
        _ => peapod::cli::run(),
    };
    std::process::exit(code);
}
