//! [`NsGuard`]: the calling thread, switched into a set, until dropped.

use std::fmt;
use std::marker::PhantomData;

use crate::error::{Error, Result};
use crate::handle::namespace::Namespace;
use crate::handle::reentry::can_return_to;
use crate::handle::set::NsSet;
use crate::kind::{NsKind, NsKinds, SETNS_ORDER};
use crate::process::origin;
use crate::sys;
use crate::thread::owners::InGuard;
use crate::thread::{marks, ns_links};

/// The calling thread, switched into the namespaces of an [`NsSet`] by
/// [`NsSet::enter`]. Dropping the guard switches the thread back, newest
/// first.
///
/// The guard is neither [`Send`] nor [`Sync`]: namespaces belong to a
/// thread, so the guard cannot be moved to, or used from, another thread,
/// and a future that holds it across an `.await` is not `Send` either, so a
/// work-stealing executor cannot move it to another thread while the thread
/// it switched goes on serving other tasks:
///
/// ```compile_fail
/// fn must_be_send<T: Send>(_: T) {}
/// let guard = nsguard::NsSet::new().enter().unwrap();
/// must_be_send(guard);
/// ```
///
/// # Poisoning
///
/// If switching back fails, the thread cannot be trusted any more: it is
/// *poisoned* (see [`is_poisoned`](crate::is_poisoned)). Every later nsguard
/// call on it fails with [`Error::Poisoned`], and `drop` panics, or aborts
/// the process if the thread is already panicking: a thread must never go on
/// silently in namespaces it was not meant to be in. Use
/// [`restore`](Self::restore) to get the error as a value instead.
///
/// Guards nest; they must be dropped in the reverse order of their creation
/// (innermost first), as scopes do. A guard dropped while a guard created
/// after it on the same thread is still alive (or was leaked with
/// [`mem::forget`](std::mem::forget)) poisons the thread the same way. A
/// guard dropped on a thread that is already poisoned does nothing.
///
/// # Async code: never hold a guard across `.await`
///
/// `!Send` stops a work-stealing runtime from moving a guard-holding future
/// to another thread, but nothing stops a future that needs no `Send`
/// (a current-thread runtime, `tokio::task::LocalSet`, `join!`,
/// `futures::executor::block_on`) from holding a guard across an `.await`.
/// While it is suspended, **every other task polled on that thread runs
/// inside the guard's namespaces**; and two such futures joined on one
/// thread drop their guards out of order, which poisons the thread and
/// panics. Switch inside an `.await`-free scope, or use
/// [`NsSet::run_async`] or an `#[in_namespace] async fn`, whose every poll
/// runs on a worker inside the namespaces.
///
/// Clippy can flag a guard held across `.await` in your project: put this in
/// its `clippy.toml` (this project does the same):
///
/// ```toml
/// await-holding-invalid-types = [
///     { path = "nsguard::NsGuard", reason = "other tasks on this thread would run inside its namespaces" },
/// ]
/// ```
///
/// # Leaking a guard
///
/// [`mem::forget`](std::mem::forget) on the outermost guard of a thread
/// leaves the thread inside the namespaces for good, and nothing can notice:
/// no guard is left to drop, so the thread is not poisoned. (Forgetting an
/// inner guard is caught when the outer one is dropped.) Do not forget
/// guards; if a guard must outlive a scope, keep it in a variable of the
/// thread that created it and call [`restore`](NsGuard::restore).
#[must_use = "the thread is switched back when the guard is dropped: bind it to a variable \
              (`let _guard = ...`) for as long as the code must run inside"]
pub struct NsGuard {
    /// 1 for the outermost live guard of the thread, then 2, 3…
    level: usize,
    /// The namespaces the thread left.
    restore: WaysBack,
    /// The kinds this guard switched.
    switched: NsKinds,
    /// False once [`NsGuard::restore`] has run.
    armed: bool,
    /// For the outermost guard of a thread: counts the thread among those
    /// nsguard has switched (see [`stray_threads`](crate::stray_threads)).
    _owned: Option<InGuard>,
    /// Makes the guard `!Send` and `!Sync`.
    _thread_bound: PhantomData<*const ()>,
}

/// How a guard gets back to a namespace it left.
enum WayBack {
    /// The process's own namespace of its kind, whose handle the origin
    /// thread holds for the life of the process: nothing to open or close.
    Home(&'static Namespace),
    /// A handle opened when the guard was made (the thread was elsewhere).
    Opened(Namespace),
}

impl WayBack {
    fn ns(&self) -> &Namespace {
        match self {
            WayBack::Home(ns) => ns,
            WayBack::Opened(ns) => ns,
        }
    }
}

/// A guard's ways back, one per kind it switched, taken newest first. The
/// process's own namespaces (where a thread usually comes from) are the
/// origin's handles, kept by reference: a guard that leaves only those
/// allocates nothing.
struct WaysBack {
    /// The kinds with a way back still to take, entered in `SETNS_ORDER`.
    kinds: NsKinds,
    /// The origin's handle of each kind whose way back it is.
    home: [Option<&'static Namespace>; NsKind::COUNT],
    /// The handles opened for the other kinds, in `SETNS_ORDER`.
    opened: Vec<Namespace>,
}

impl WaysBack {
    fn new() -> WaysBack {
        WaysBack {
            kinds: NsKinds::EMPTY,
            home: [None; NsKind::COUNT],
            opened: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Adds the way back of `kind`; kinds come in `SETNS_ORDER`.
    fn push(&mut self, kind: NsKind, way_back: WayBack) {
        self.kinds.insert(kind);
        match way_back {
            WayBack::Home(ns) => self.home[kind.index()] = Some(ns),
            WayBack::Opened(ns) => self.opened.push(ns),
        }
    }

    /// Takes the way back of the kind entered last.
    fn pop(&mut self) -> Option<WayBack> {
        let kind = SETNS_ORDER
            .into_iter()
            .rev()
            .find(|&k| self.kinds.contains(k))?;
        self.kinds.remove(kind);
        match self.home[kind.index()].take() {
            Some(ns) => Some(WayBack::Home(ns)),
            None => self.opened.pop().map(WayBack::Opened),
        }
    }

    /// Keeps the ways back of the first `len` kinds entered only.
    fn truncate(&mut self, len: usize) {
        while self.len() > len {
            drop(self.pop());
        }
    }

    /// The namespaces of the ways back, in `SETNS_ORDER`.
    fn namespaces(&self) -> impl Iterator<Item = &Namespace> + '_ {
        let mut opened = self.opened.iter();
        SETNS_ORDER
            .into_iter()
            .filter(|&k| self.kinds.contains(k))
            .filter_map(move |k| self.home[k.index()].or_else(|| opened.next()))
    }
}

impl NsSet {
    /// Switches the **calling thread** into every namespace of the set, and
    /// returns a guard that switches it back when dropped.
    ///
    /// The thread's current namespaces are opened before the first
    /// `setns(2)`, so that it can always be switched back; kinds the thread
    /// is already in are not switched. Each `setns` passes the kind's
    /// `CLONE_NEW*` flag, so the kernel refuses a namespace of another kind.
    /// If entering fails half way, the kinds already switched are switched
    /// back before the error is returned: the thread is where it was.
    ///
    /// Only net, uts, ipc, cgroup and pid can be switched this way (pid:
    /// only `pid_for_children` changes, and the thread cannot create
    /// threads while it is switched; processes it forks start in the pid
    /// namespace). A mnt, time or user namespace the thread is already in
    /// needs no switch and is accepted (a set read from a container often
    /// has the host's user and time namespaces); another one is refused:
    /// run the code on a worker or in a process instead.
    ///
    /// Never hold the guard across `.await`: see [`NsGuard`]'s docs.
    ///
    /// Everything else on this thread runs inside too while the guard lives;
    /// threads started meanwhile stay inside for good, and work handed to
    /// thread pools started earlier runs outside.
    ///
    /// # Errors
    ///
    /// - [`Error::UnsupportedOnThread`] if the set has a mnt, time or user
    ///   namespace the thread is not already in, before anything changes;
    /// - [`Error::PermissionDenied`] without `CAP_SYS_ADMIN` over the target;
    /// - [`Error::Enter`] if `setns` fails otherwise;
    /// - [`Error::Restore`] if switching back after a failure failed too: the
    ///   thread is then poisoned;
    /// - [`Error::Poisoned`] if the thread was poisoned before.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use nsguard::{Namespace, NsSet};
    ///
    /// let blue = NsSet::from(Namespace::named("blue")?);
    /// {
    ///     let _guard = blue.enter()?;
    ///     // this thread is in `blue`: sockets made here live there
    /// }
    /// // and back where it was
    /// # Ok::<(), nsguard::Error>(())
    /// ```
    #[doc(alias = "setns")]
    pub fn enter(&self) -> Result<NsGuard> {
        enter(self)
    }
}

/// [`NsSet::enter`].
fn enter(set: &NsSet) -> Result<NsGuard> {
    marks::check()?;
    // nsguard's threads must be able to start from a thread no guard has
    // switched: start them before the first switch of the process. (An
    // error here is not this call's: the origin is retried on later use.)
    let origin = origin::get().ok();
    // Every way back is found before the thread leaves anything, and every
    // refusal is made before then too. Where the thread is comes from one
    // read of its link per kind; a thread found in the process's own
    // namespace (the usual case) goes back through the origin's handle of
    // it, which nothing can close while the process lives, so its inode
    // number alone names it exactly.
    let mut heres = [0u64; NsKind::COUNT];
    ns_links::each_current_ino(set.kinds(), |kind, ino| {
        heres[kind.index()] = ino;
        true
    })?;
    // The ways back, in the order of the switches.
    let mut restore = WaysBack::new();
    let mut targets: [Option<&Namespace>; NsKind::COUNT] = [None; NsKind::COUNT];
    for kind in SETNS_ORDER {
        let Some(target) = set.get(kind) else {
            continue;
        };
        let here = heres[kind.index()];
        if here == target.id().ino() {
            // A kind the thread is already in needs no switch, so only a
            // real switch of a kind a thread cannot make is refused.
            continue;
        }
        if let Some((reason, instead)) = kind.thread_refusal() {
            return Err(Error::UnsupportedOnThread {
                kind,
                reason,
                instead,
            });
        }
        let home = origin
            .filter(|o| o.returnable.contains(kind))
            .and_then(|o| o.home.get(kind))
            .filter(|ns| ns.id().ino() == here);
        let way_back = match home {
            Some(ns) => WayBack::Home(ns),
            None => {
                let here = Namespace::current_unchecked(kind)?;
                if !can_return_to(&here)? {
                    return Err(Error::NoWayBack {
                        target: target.id(),
                        here: here.id(),
                    });
                }
                WayBack::Opened(here)
            }
        };
        targets[restore.len()] = Some(target);
        restore.push(kind, way_back);
    }
    let mut switched = NsKinds::EMPTY;
    for (entered, target) in targets.into_iter().flatten().enumerate() {
        if let Err(errno) = sys::setns(target, target.kind()) {
            let err = Error::enter(target.id(), target.path(), errno);
            // Only the kinds already entered are switched back.
            restore.truncate(entered);
            if let Err(back) = switch_back(&mut restore) {
                marks::poison(format!(
                    "{err}; then switching back the kinds already entered failed: {back}"
                ));
                return Err(back);
            }
            return Err(err);
        }
        switched.insert(target.kind());
    }
    let level = marks::push_guard();
    Ok(NsGuard {
        level,
        restore,
        switched,
        armed: true,
        _owned: (level == 1).then(InGuard::mark),
        _thread_bound: PhantomData,
    })
}

/// Switches back to each namespace of `restore`, newest first. Tries every
/// one even after a failure; returns the first failure.
fn switch_back(restore: &mut WaysBack) -> Result<()> {
    let mut result = Ok(());
    while let Some(way_back) = restore.pop() {
        let ns = way_back.ns();
        if let Err(errno) = sys::setns(ns, ns.kind()) {
            if result.is_ok() {
                result = Err(Error::Restore { ns: ns.id(), errno });
            }
        }
    }
    result
}

impl NsGuard {
    /// Switches the thread back now, and says whether that worked.
    ///
    /// Unlike dropping the guard, a failure is returned, not raised as a
    /// panic; the thread is poisoned all the same.
    ///
    /// # Errors
    ///
    /// - [`Error::Restore`] if a `setns` back failed: the thread is now
    ///   poisoned;
    /// - [`Error::Poisoned`] if the thread was already poisoned (nothing is
    ///   switched), or this guard is dropped out of order (the thread is
    ///   then poisoned, and this guard's kinds are switched back as far as
    ///   possible).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use nsguard::{Namespace, NsSet};
    ///
    /// let guard = NsSet::from(Namespace::named("blue")?).enter()?;
    /// // ... work inside ...
    /// guard.restore()?;
    /// # Ok::<(), nsguard::Error>(())
    /// ```
    pub fn restore(mut self) -> Result<()> {
        self.armed = false;
        self.finish()
    }

    /// The kinds this guard switched: those of the set the thread was not
    /// already in.
    pub fn switched(&self) -> NsKinds {
        self.switched
    }

    fn finish(&mut self) -> Result<()> {
        marks::check()?;
        let depth = marks::depth();
        if depth != self.level {
            let reason = format!(
                "NsGuard dropped out of order: the guard that was guard #{level} on this thread \
                 was dropped while {live} guard(s) entered after it were still alive (or were \
                 leaked with mem::forget); drop guards innermost first, as scopes do",
                level = self.level,
                live = depth.saturating_sub(self.level),
            );
            marks::poison(reason.clone());
            // Best effort: leave at least this guard's kinds where they were
            // before it.
            let _ = switch_back(&mut self.restore);
            return Err(Error::Poisoned { reason });
        }
        let result = switch_back(&mut self.restore);
        match &result {
            Ok(()) => marks::pop_guard(self.level),
            Err(err) => marks::poison(err.to_string()),
        }
        result
    }
}

impl Drop for NsGuard {
    // Panicking is the documented answer to a thread that cannot be put back.
    #[allow(clippy::panic)]
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if marks::is_poisoned() {
            // Already reported when it happened; the thread's namespaces are
            // unknown, so switching anything would be a guess.
            return;
        }
        if let Err(err) = self.finish() {
            if std::thread::panicking() {
                eprintln!(
                    "nsguard: {err}\nnsguard: aborting: this thread is already panicking and \
                     must not unwind further in namespaces it was not meant to be in"
                );
                std::process::abort();
            }
            panic!("nsguard: {err}");
        }
    }
}

impl fmt::Debug for NsGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NsGuard")
            .field("level", &self.level)
            .field("switched", &self.switched)
            .field(
                "restores",
                &self
                    .restore
                    .namespaces()
                    .map(Namespace::id)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}
