fn main() {
    std::process::exit(hil::cli::main());
}
