#[nsguard::in_namespace(net = 42)]
fn number() -> std::io::Result<()> {
    Ok(())
}

#[nsguard::in_namespace(set = "/run/netns/blue")]
fn not_a_set() -> std::io::Result<()> {
    Ok(())
}

#[nsguard::in_namespace(net = "/run/netns/blue", crate = 5)]
fn bad_crate() -> std::io::Result<()> {
    Ok(())
}

fn main() {}
