#[nsguard::in_namespace(net, uts =)]
fn f() -> std::io::Result<()> {
    Ok(())
}

#[nsguard::in_namespace]
fn g() -> std::io::Result<()> {
    Ok(())
}

fn main() {}
