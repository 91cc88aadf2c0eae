//! What an executor tells about itself: `Executor::stats()` and, with the
//! `tracing` feature, events with the reason a worker was retired.

use std::sync::{Arc, Mutex};

use nsguard::{NsKind, NsSet};
use nsguard_suite::{drop_cap_sys_admin_on_this_thread, net_set, TempNs};

#[test]
fn stats_count_calls_switches_retirements_and_evictions() {
    let (a, b) = (TempNs::new(NsKind::Net), TempNs::new(NsKind::Net));
    let executor = nsguard_suite::capped_executor(1);
    let set_a = net_set(&a);
    executor.run(&set_a, || ()).unwrap(); // a new worker switches to a
    executor.run(&set_a, || ()).unwrap(); // warm: no switch
    let stats = executor.stats();
    assert_eq!((stats.calls, stats.switches), (2, 1));
    assert_eq!(stats.retired, nsguard::Retired::default());

    // A body that switches its own thread retires its worker.
    executor
        .run(&set_a, || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS).unwrap()
        })
        .unwrap();
    // One that changes its capabilities too.
    executor
        .run(&set_a, drop_cap_sys_admin_on_this_thread)
        .unwrap();
    // The next call waits for the retired worker's place, on a fresh one.
    executor.run(&net_set(&b), || ()).unwrap();
    let stats = executor.stats();
    assert_eq!(stats.retired.namespaces_changed, 1, "{stats:?}");
    assert_eq!(stats.retired.thread_state_changed, 1, "{stats:?}");
    assert_eq!(stats.calls, 5);

    // The program lets go of b: the idle worker inside is sent home.
    executor.run(&NsSet::new(), || ()).unwrap(); // (it is idle again)
    let set_b = net_set(&b);
    executor.run(&set_b, || ()).unwrap();
    let before = executor.stats().evictions;
    drop(set_b);
    // At a cap of 1, this call runs once the worker has left b.
    executor.run(&NsSet::new(), || ()).unwrap();
    assert_eq!(executor.stats().evictions, before + 1);
}

/// A subscriber that keeps every event as a line of text.
struct Lines(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}{}", self.0);
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl tracing::Subscriber for Lines {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        let meta = event.metadata();
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}: {}", meta.level(), meta.target(), fields.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn a_retired_worker_is_reported_with_its_reason() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    tracing::subscriber::set_global_default(Lines(Arc::clone(&lines))).unwrap();
    let a = TempNs::new(NsKind::Net);
    let executor = nsguard_suite::capped_executor(1);
    let set = net_set(&a);
    executor
        .run(&set, || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap()
        })
        .unwrap();
    // The check runs after the result is back: the next call, at a cap of
    // 1, runs once the worker has been retired.
    executor.run(&set, || ()).unwrap();
    let lines = lines.lock().unwrap().clone();
    for line in &lines {
        println!("{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("WARN nsguard: worker retired")
                && l.contains("a body left it in other namespaces")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("worker switched")),
        "{lines:#?}"
    );
}
