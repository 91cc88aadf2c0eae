#[nsguard::in_namespace(nett = "/run/netns/blue")]
fn f() -> std::io::Result<()> {
    Ok(())
}

fn main() {}
