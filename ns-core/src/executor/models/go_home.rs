//! The program drops its last handle to a namespace while a call for it
//! is dispatched: the idle worker inside either serves the call warm (and
//! goes home after it) or goes home first (and switches back in for the
//! call).
//!
//! Invariants, in every interleaving: the call finishes; once the handle
//! is gone, every worker leaves the namespace (`Scheduler::wait_left`
//! returns, which `netns::delete` relies on), and no idle worker stays
//! there; the books settle and empty as in every model.

use std::sync::Arc;
use std::time::Duration;

use super::{at, check, config, run, scheduler, settle, shut_down_and_check};
use crate::handle::registry::Registration;
use crate::kind::NsKind;
use crate::sync::thread;
use crate::sync::time::Instant;

/// The made-up inode of the namespace let go of.
const NET_N: u64 = 0x7e57_0101;

#[test]
fn loom_last_handle_dropped_while_dispatching() {
    check("last_handle_dropped_while_dispatching", 3, || {
        let mut config = config(1, 0);
        config.spin = Duration::from_micros(2); // spin, then park
        let s = scheduler(config);
        let n = at(NsKind::Net, NET_N);
        // The program's handle to N (the count `is_held` reads).
        let handle = Registration::new(NET_N);
        assert!(run(&s, n, || ()).is_ok()); // a worker idles in N
        let call = {
            let s = Arc::clone(&s);
            thread::spawn(move || run(&s, n, || 1))
        };
        // The last handle goes: what the handle registry's hook does.
        drop(handle);
        s.evict(NET_N);
        assert_eq!(call.join().ok().and_then(Result::ok), Some(1));
        let deadline = Instant::now() + Duration::from_secs(3600);
        assert!(s.wait_left(NET_N, deadline).is_ok());
        let books = settle(&s);
        assert!(
            books
                .located
                .iter()
                .all(|(_, w)| w.get(NsKind::Net) != NET_N),
            "a worker stayed in a namespace the program let go of: {books:?}"
        );
        shut_down_and_check(&s);
    });
}
