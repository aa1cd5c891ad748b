//! The target has no network: not even the host's loopback.

use std::net::TcpListener;

use safeexec_tests::{assert_verdict, dump, require_root, stdout};

#[test]
fn tcp_connect_to_a_listener_on_host_loopback_fails() {
    let t = require_root!();
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen on 127.0.0.1");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let port = listener
        .local_addr()
        .expect("listener address")
        .port()
        .to_string();
    let out = t.safeexec(&["--exec", &t.fixture("tcp_connect"), &port]);
    assert!(
        !stdout(&out).contains("connected"),
        "the target reached 127.0.0.1:{port}\n{}",
        dump(&out)
    );
    assert!(
        listener.accept().is_err(),
        "the listener got a connection\n{}",
        dump(&out)
    );
    assert_verdict(&out, "Command exited with non-zero status (1)", 1);
}

#[test]
fn tcp_connect_to_host_loopback_works_outside_the_sandbox() {
    // The control for the test above: the fixture can connect when it is
    // not sandboxed, so its failure inside means no network.
    let t = require_root!();
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen on 127.0.0.1");
    let port = listener
        .local_addr()
        .expect("listener address")
        .port()
        .to_string();
    let out = std::process::Command::new(t.fixture("tcp_connect"))
        .arg(&port)
        .output()
        .expect("run tcp_connect");
    assert_eq!(stdout(&out), "connected\n", "{}", dump(&out));
}
