#[nsguard::in_namespace(user = "/proc/1/ns/user", time = "/proc/1/ns/time")]
fn f() -> std::io::Result<()> {
    Ok(())
}

fn main() {}
