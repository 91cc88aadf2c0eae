// The error type must be able to hold a namespace error.
#[nsguard::in_namespace(net = "/run/netns/blue")]
fn f() -> Result<(), String> {
    Ok(())
}

fn main() {}
