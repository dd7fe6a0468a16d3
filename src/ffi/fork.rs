//! Fork safety: a `pthread_atfork` child handler moves the handle tables'
//! fork epoch on, so a child process never touches the pools, connections
//! and queues of its parent (see `handles.rs`).

use std::sync::Once;

static INSTALL: Once = Once::new();

extern "C" fn in_child_after_fork() {
    // Only an atomic increment: async-signal-safe, as a child handler of a
    // multi-threaded process must be.
    crate::handles::note_fork_in_child();
}

/// Registers the child handler (once per process), before the first pool,
/// connection or queue exists.
pub fn install() {
    INSTALL.call_once(|| {
        // SAFETY: registers a handler with no prepare/parent parts; the
        // handler only bumps an atomic.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(in_child_after_fork)) };
        if rc != 0 {
            crate::log::emit(
                crate::log::Level::Warn,
                "sqlpool::pool",
                "pthread_atfork failed: pools are not protected against use after fork",
            );
        }
    });
}
