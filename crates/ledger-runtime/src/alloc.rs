//! The service binaries' memory allocator: jemalloc, returning freed memory to the system.
//!
//! Each service holds a bounded burst of work (a consumer's unacknowledged events, their
//! handlings, their HTTP bodies) that comes and goes with a merchant's traffic. glibc's
//! allocator keeps the pages of such a burst long after it is freed, so a service's resident
//! size followed its busiest moment rather than its load; jemalloc with a background thread
//! gives pages back a second after they fall idle. Decision 0047 has the readings.
//!
//! Compiled with the `jemalloc` feature, which the service crates turn on. The options below
//! are read once at start; `_RJEM_MALLOC_CONF` in the environment adds to or overrides them.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The options, written once for both [`OPTIONS`] and the C string jemalloc reads.
macro_rules! options {
    () => {
        "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"
    };
}

/// jemalloc's options, as its `malloc_conf` string.
///
/// - `background_thread:true`: a thread of jemalloc's own purges idle pages, so memory goes
///   back while the service is quiet too, not only on its next allocation.
/// - `dirty_decay_ms:1000`: freed pages are given back after about a second (jemalloc's
///   default is ten).
/// - `muzzy_decay_ms:0`: and without a second, lazier stage.
pub const OPTIONS: &str = options!();

/// The `malloc_conf` symbol jemalloc reads before `main` (a C string pointer).
#[repr(transparent)]
struct Conf(*const u8);

// SAFETY: the pointer is to a static, immutable byte string.
unsafe impl Sync for Conf {}

#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: Conf = Conf(concat!(options!(), "\0").as_ptr());

#[cfg(test)]
mod tests {
    use std::ffi::{c_char, c_void, CStr};

    /// A jemalloc option's value as read back from the running allocator.
    fn option<T: Default>(name: &CStr) -> T {
        let mut value = T::default();
        let mut len = std::mem::size_of::<T>();
        // SAFETY: `value` is a `T` of `len` bytes, as the option's type is.
        let code = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr() as *const c_char,
                &mut value as *mut T as *mut c_void,
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(code, 0, "mallctl {name:?}");
        value
    }

    #[test]
    fn the_allocator_runs_with_the_options() {
        // The symbol holds the same string the docs name.
        let conf = unsafe { CStr::from_ptr(super::MALLOC_CONF.0 as *const c_char) };
        assert_eq!(conf.to_str().unwrap(), super::OPTIONS);
        // And jemalloc read it: each option differs from jemalloc's own default.
        assert!(option::<bool>(c"opt.background_thread"));
        assert_eq!(option::<isize>(c"opt.dirty_decay_ms"), 1000);
        assert_eq!(option::<isize>(c"opt.muzzy_decay_ms"), 0);
        // And it is this process's allocator: a Box comes from jemalloc's heap.
        let boxed = Box::new([7u8; 4096]);
        let size =
            unsafe { tikv_jemalloc_sys::malloc_usable_size(boxed.as_ptr() as *const c_void) };
        assert!(size >= 4096, "jemalloc knows the Box: {size}");
    }
}
