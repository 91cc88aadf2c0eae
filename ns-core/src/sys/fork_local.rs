//! Values made once per process, and the fork generation that tells a
//! forked child that what its parent made is not its own.
//!
//! After `fork(2)` the child has one thread, a copy of the thread that
//! forked: none of the parent's other threads exist in it, and any lock
//! another thread held at the fork stays held forever. A counter bumped by
//! a `pthread_atfork` handler in the child ([`generation`]) tells every
//! structure stamped with the generation it was made in that it belongs to
//! another process. A child of a `clone(2)` called directly (as container
//! runtimes do, with namespace flags) runs no such handler: a page the
//! kernel wipes in every child (`MADV_WIPEONFORK`) tells it, and the first
//! [`generation`] read there bumps the counter. A [`ForkLocal`] holds one
//! value per generation, made on first use and never freed, so that
//! `&'static` references to it can be handed out; the values of earlier
//! generations are left alone.

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

static FORKS: AtomicU64 = AtomicU64::new(0);

extern "C" fn in_forked_child() {
    FORKS.fetch_add(1, Ordering::AcqRel);
}

/// The first word of a page the kernel wipes in a child (Linux 4.14): 1
/// in the process that armed it, 0 in a child of any fork-like clone.
/// Null until [`count_forks`] armed it, or where it could not.
static WIPED_IN_CHILD: AtomicPtr<AtomicU64> = AtomicPtr::new(ptr::null_mut());

/// How many times this process's ancestors forked since nsguard started
/// counting ([`count_forks`]): what was made in another generation
/// belongs to another process, whose threads this one does not have.
#[inline]
pub(crate) fn generation() -> u64 {
    let word = WIPED_IN_CHILD.load(Ordering::Acquire);
    // SAFETY: a non-null `word` points into the page `arm_wipe_page`
    // mapped, which is never unmapped (a child has its own wiped copy).
    if let Some(word) = unsafe { word.as_ref() } {
        if word.load(Ordering::Acquire) == 0 {
            // A child whose clone skipped the C library's fork handlers (or
            // ran them too: the generation then moves twice, which tells
            // the same). It has one thread until it starts more, so two
            // first reads at once cannot happen before anything it made.
            FORKS.fetch_add(1, Ordering::AcqRel);
            word.store(1, Ordering::Release);
        }
    }
    FORKS.load(Ordering::Acquire)
}

/// Whether a child of a `clone(2)` that skips the C library's fork handlers
/// is told apart too ([`generation`]): false only where the kernel refused
/// to wipe a page in children, or before [`count_forks`].
#[inline]
pub(crate) fn tells_raw_clones_apart() -> bool {
    !WIPED_IN_CHILD.load(Ordering::Acquire).is_null()
}

/// Maps the page [`WIPED_IN_CHILD`] points into and arms it; null if the
/// kernel refuses (before Linux 4.14, or a filter).
#[cfg(not(miri))]
fn arm_wipe_page() -> *mut AtomicU64 {
    // Rounded up to the page size by mmap.
    const LEN: usize = 4096;
    // SAFETY: a new private anonymous mapping, which aliases nothing.
    let page = unsafe {
        libc::mmap(
            ptr::null_mut(),
            LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if page == libc::MAP_FAILED {
        return ptr::null_mut();
    }
    // SAFETY: advice on the mapping just made, which nothing else uses.
    if unsafe { libc::madvise(page, LEN, libc::MADV_WIPEONFORK) } != 0 {
        // SAFETY: unmaps the mapping just made, which nothing else uses.
        unsafe { libc::munmap(page, LEN) };
        return ptr::null_mut();
    }
    let word = page.cast::<AtomicU64>();
    // SAFETY: the page is writable, page-aligned (so aligned for an
    // AtomicU64) and zeroed, a valid AtomicU64; it is only used as one.
    unsafe { (*word).store(1, Ordering::Release) };
    word
}

/// Miri runs no system call of this kind: raw clones are not told apart.
#[cfg(miri)]
fn arm_wipe_page() -> *mut AtomicU64 {
    ptr::null_mut()
}

/// Whether [`count_forks`] has run.
static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Starts counting forks (once per process; later calls do nothing). Call
/// it before anything is stamped with a [`generation`].
#[inline]
pub(crate) fn count_forks() {
    // A load first: this runs on every use of a fork-local value, and a
    // swap would write the shared cache line each time.
    if !REGISTERED.load(Ordering::Acquire) {
        register();
    }
}

/// [`count_forks`]'s first time, kept out of line: the callers' own code
/// stays on as few pages as it can.
#[cold]
#[inline(never)]
fn register() {
    if !REGISTERED.swap(true, Ordering::AcqRel) {
        // SAFETY: registers a handler that only increments an atomic, which
        // is async-signal-safe and so allowed in a forked child.
        unsafe { libc::pthread_atfork(None, None, Some(in_forked_child)) };
        WIPED_IN_CHILD.store(arm_wipe_page(), Ordering::Release);
    }
}

/// A value of one fork generation, as published.
struct Published<T> {
    generation: u64,
    value: T,
}

/// One value per fork generation of the process, made on first use and
/// never freed (`&'static`).
pub(crate) struct ForkLocal<T> {
    current: AtomicPtr<Published<T>>,
}

impl<T> ForkLocal<T> {
    /// Nothing made yet.
    pub(crate) const fn new() -> ForkLocal<T> {
        ForkLocal {
            current: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The value of this generation, if it was made.
    #[inline]
    pub(crate) fn get(&'static self) -> Option<&'static T> {
        count_forks();
        let current = self.current.load(Ordering::Acquire);
        // SAFETY: as in `make_and_publish`: published values are never freed.
        let published = unsafe { current.as_ref() }?;
        (published.generation == generation()).then_some(&published.value)
    }

    /// The value of this generation, made by `make` if there is none yet.
    /// Threads that race to make it each call `make`; one value is
    /// published and the others are dropped. Nothing is kept on error: a
    /// later call makes it again.
    ///
    /// # Errors
    ///
    /// The error of `make`.
    #[inline]
    pub(crate) fn get_or_try_make<E>(
        &'static self,
        make: impl FnMut() -> Result<T, E>,
    ) -> Result<&'static T, E> {
        match self.get() {
            Some(value) => Ok(value),
            None => self.make_and_publish(make),
        }
    }

    /// [`get_or_try_make`](Self::get_or_try_make) when the value was not
    /// made yet in this generation, out of line (see [`register`]).
    #[cold]
    #[inline(never)]
    fn make_and_publish<E>(
        &'static self,
        mut make: impl FnMut() -> Result<T, E>,
    ) -> Result<&'static T, E> {
        loop {
            let current = self.current.load(Ordering::Acquire);
            let generation = generation();
            // SAFETY: non-null pointers in `current` come from
            // `Box::into_raw` below and are never freed once published.
            if let Some(published) = unsafe { current.as_ref() } {
                if published.generation == generation {
                    return Ok(&published.value);
                }
            }
            let fresh = Box::into_raw(Box::new(Published {
                generation,
                value: make()?,
            }));
            match self
                .current
                .compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // The value of an earlier generation (if any) is left as it
                // is: it belongs to the parent process, and dropping it
                // could touch locks held at the fork.
                // SAFETY: just published, never freed (see above).
                Ok(_) => return Ok(unsafe { &(*fresh).value }),
                // Another thread published one first; this one was never
                // shared.
                // SAFETY: `fresh` came from `Box::into_raw` above and no
                // reference to it was handed out.
                Err(_) => drop(unsafe { Box::from_raw(fresh) }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn one_value_per_generation_made_once() {
        static VALUE: ForkLocal<usize> = ForkLocal::new();
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let make = || -> Result<usize, ()> { Ok(MADE.fetch_add(1, Ordering::SeqCst) + 7) };
        let first = VALUE.get_or_try_make(make).unwrap();
        let again = VALUE.get_or_try_make(make).unwrap();
        assert!(std::ptr::eq(first, again));
        assert_eq!((*first, MADE.load(Ordering::SeqCst)), (7, 1));
    }

    #[test]
    fn threads_racing_to_make_it_all_get_the_one_published() {
        static VALUE: ForkLocal<Box<u64>> = ForkLocal::new();
        let made = std::sync::Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let made = std::sync::Arc::clone(&made);
                std::thread::spawn(move || {
                    let value = VALUE
                        .get_or_try_make(|| {
                            let n = made.fetch_add(1, Ordering::SeqCst) as u64;
                            Ok::<_, ()>(Box::new(100 + n))
                        })
                        .unwrap();
                    value as *const Box<u64> as usize
                })
            })
            .collect();
        let seen: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(seen.iter().all(|p| *p == seen[0]), "one value for all");
        let published = VALUE.get().unwrap();
        assert!((100..100 + made.load(Ordering::SeqCst) as u64).contains(&**published));
    }

    #[test]
    fn nothing_is_kept_on_error() {
        static VALUE: ForkLocal<u8> = ForkLocal::new();
        assert_eq!(VALUE.get_or_try_make(|| Err::<u8, _>("no")), Err("no"));
        assert_eq!(VALUE.get_or_try_make(|| Ok::<_, &str>(3)), Ok(&3));
    }
}
