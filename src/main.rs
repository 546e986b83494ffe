//! phiwatch's binary: everything lives in the library; see `commands`.

use clap::Parser;

fn main() {
    let cli = phiwatch::cli::Cli::parse();
    phiwatch::logging::init();
    std::process::exit(phiwatch::commands::main(cli.command));
}
