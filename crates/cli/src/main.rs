//! The `charter` binary; everything lives in the library.

/// mimalloc: a request allocates and frees many small buffers across threads, where it
/// is cheaper than the system allocator's locked arenas.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    charter_cli::main()
}
