//! The process: the origin thread that starts every nsguard thread
//! from the process's own namespaces ([`origin`]), short-lived helper
//! threads ([`helper_thread`]), and the containment of user code that runs
//! on nsguard's threads ([`user_code`]).

pub(crate) mod helper_thread;
pub(crate) mod origin;
pub(crate) mod user_code;
