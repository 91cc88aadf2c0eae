use std::rc::Rc;

#[nsguard::in_namespace(net = "/run/netns/blue")]
fn f() -> std::io::Result<Rc<String>> {
    Ok(Rc::new(String::new()))
}

fn main() {}
