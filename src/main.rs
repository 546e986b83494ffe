//! phiwatch's binary: everything lives in the library; see `cli`.

fn main() {
    std::process::exit(phiwatch::cli::main());
}
