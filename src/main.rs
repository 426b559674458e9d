fn main() -> std::process::ExitCode {
    tapevault::cli::main()
}
