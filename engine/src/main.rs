//! The `gatewire` command line.

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: gatewire <command>

commands:
  start     run the configured roles (available once the gateway lands; see README)
  version   print the version
";

fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    match command.as_deref() {
        Some("version" | "--version" | "-V") => {
            println!("gatewire {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("start") => {
            eprintln!("gatewire: the Register and Gateway roles are not built yet (issue 3)");
            ExitCode::from(2)
        }
        _ => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
