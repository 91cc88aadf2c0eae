//! Panics: user code that panics where it must be contained
//! ([`PanicOnDrop`]), and what a caught panic said ([`panic_message`]).

/// A value whose `Drop` panics with its message (unless the thread is
/// already panicking): user code that must be contained.
#[derive(Debug)]
pub struct PanicOnDrop(pub &'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

/// The message of a caught panic's payload (`panic!` with a `String` or a
/// `&str`); empty for any other payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}
