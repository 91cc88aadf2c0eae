#[nsguard::in_namespace(net = "/run/netns/blue")]
const fn c() -> Result<(), std::io::Error> {
    Ok(())
}

#[nsguard::in_namespace(net = "/run/netns/blue")]
extern "C" fn e() -> std::io::Result<()> {
    Ok(())
}

fn main() {}
