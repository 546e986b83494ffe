//! phiwatch's binary: everything lives in the library; see `commands`.

use clap::Parser;

/// mimalloc instead of the system allocator: parsing and the engine allocate and free
/// many small, short-lived buffers per event (strings, vectors of a JSON tree), and
/// glibc's malloc/free were about a quarter of a replay's samples under `perf`. mimalloc's
/// per-thread free lists make those calls cheap and scale across the decoding threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `arena_eager_commit` option (its number in `mimalloc.h`).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Commit arena memory as it is used, not up front. With eager commit (mimalloc's default
/// on Linux) a replay's peak RSS went from 182 MiB (glibc) to 628 MiB; with it off, below
/// glibc's. It must be set before the first allocation creates the first arena, which
/// happens before `main` (the runtime allocates), hence a constructor in `.init_array`.
/// `MIMALLOC_ARENA_EAGER_COMMIT` in the environment still wins.
/// (`libc::getenv`, not `std::env`: that allocates, and allocating is what must not
/// happen first.)
extern "C" fn lazy_commit() {
    // SAFETY: getenv reads the environment with a NUL-terminated name; mi_option_set sets
    // one of mimalloc's global options. Nothing else runs yet.
    unsafe {
        if libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
            libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        }
    }
}

#[used]
#[cfg_attr(target_os = "linux", link_section = ".init_array")]
static LAZY_COMMIT: extern "C" fn() = lazy_commit;

fn main() {
    #[cfg(not(target_os = "linux"))]
    lazy_commit();
    let cli = phiwatch::cli::Cli::parse();
    phiwatch::logging::init();
    std::process::exit(phiwatch::commands::main(cli.command));
}
