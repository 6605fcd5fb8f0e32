//! Giving freed memory back to the system once a burst of output is over (see
//! `runtime::pipes`). glibc keeps freed blocks in its heaps unless they sit at the top of
//! one, so dropping a burst's buffers returned only part of their pages; `malloc_trim`
//! returns every free page. musl returns freed memory on its own.

/// Returns the allocator's free pages to the system (glibc; nothing to do elsewhere).
pub fn give_back() {
    #[cfg(target_env = "gnu")]
    // SAFETY: no pointer is passed; malloc_trim only walks the allocator's own free
    // lists, under their locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
