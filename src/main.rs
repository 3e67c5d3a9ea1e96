//! The `peapod` binary: hidden modes for the processes peapod re-executes itself as, then the CLI.

use peapod::container::runtime::INIT_ARG;
use peapod::cri::streaming::exec_child::EXEC_VERB;
use peapod::cri::CRI_VERB;
use peapod::pod::supervisor::{PULL_VERB, SUPERVISE_VERB};
use peapod::probe::PROBE_VERB;

fn main() {
    peapod::starttrace::mark("cli main");
    let args: Vec<String> = std::env::args().collect();
    let code = match args.get(1).map(String::as_str) {
        // Container init comes first: it is pid 1 of a container and must not parse the CLI or
        // start anything.
        Some(INIT_ARG) => {
            let bundle = args
                .get(2)
                .map(std::path::PathBuf::from)
                .unwrap_or_default();
            peapod::container::runtime::init_main(&bundle)
        }
        Some(SUPERVISE_VERB) => match args.get(2) {
            Some(uid) => peapod::pod::supervisor::main(uid),
            None => 2,
        },
        Some(PULL_VERB) => match args.get(2) {
            Some(reference) => peapod::pod::supervisor::pull_main(reference),
            None => 2,
        },
        Some(PROBE_VERB) => peapod::probe::probe_main(),
        Some(CRI_VERB) => peapod::cri::cri_main(&args[2..]),
        Some(EXEC_VERB) => peapod::cri::streaming::exec_child::exec_main(&args[2..]),
        _ => {
            // Before the CLI allocates anything: the pods' keepers are forked from it.
            if peapod::pod::spawner::starts_pods(&args) {
                peapod::pod::spawner::start();
            } else if peapod::pod::zygote::is_agent(&args) {
                // The node agent's zygote, which forks the keepers of the host's pods.
                peapod::pod::zygote::start();
            }
            let code = peapod::cli::run();
            peapod::pod::spawner::finish();
            if peapod::pod::spawner::may_end_pods(&args) {
                // No process of peapod's outlives the host's last pod.
                peapod::pod::zygote::await_cli_zygote_exit();
            }
            code
        }
    };
    peapod::starttrace::mark("exit");
    std::process::exit(code);
}
