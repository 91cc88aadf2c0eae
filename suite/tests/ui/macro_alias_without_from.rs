// An alias of `Result` is accepted, but its error type must still hold a
// namespace error.
pub struct AppError;

pub type AppResult<T> = Result<T, AppError>;

#[nsguard::in_namespace(net = "/run/netns/blue")]
fn f() -> AppResult<()> {
    Ok(())
}

fn main() {}
