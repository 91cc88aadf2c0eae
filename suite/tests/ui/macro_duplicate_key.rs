#[nsguard::in_namespace(net = "/run/netns/a", uts = "/proc/1/ns/uts", net = "/run/netns/b")]
fn f() -> std::io::Result<()> {
    Ok(())
}

fn main() {}
