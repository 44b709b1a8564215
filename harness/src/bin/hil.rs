fn main() {
    let code = hil::cli::main();
    // The run's private runtime directory (QMP sockets...) goes with it.
    hil::runtime::cleanup();
    std::process::exit(code);
}
