//! The helper called directly, without the frontend, as a member of its
//! group: the start of the adversarial suite (issue 3).

use safeexec_tests::{dump, frame, request, require_root, stderr};
use shared::{End, Reply};

#[test]
fn helper_called_directly_with_a_valid_request_runs_it() {
    let t = require_root!();
    let got = t
        .run_helper::<&str>(&[])
        .exchange(&frame(&request(&["/bin/true"])));
    let outcome = got.outcome();
    assert_eq!(
        outcome.end,
        End::Exited(0),
        "{outcome:?}\n{}",
        dump(&got.output)
    );
    assert!(safeexec_tests::in_policy_range(outcome.uid), "{outcome:?}");
    assert!(got.output.status.success(), "{}", dump(&got.output));
}

#[test]
fn helper_without_a_request_descriptor_refuses_with_one_line() {
    let t = require_root!();
    let out = t.run_helper::<&str>(&[]).output();
    assert!(!out.status.success(), "{}", dump(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "not one line\n{}", dump(&out));
}

#[test]
fn helper_given_garbage_refuses_and_replies_failed_or_nothing() {
    let t = require_root!();
    let got = t
        .run_helper::<&str>(&[])
        .exchange(b"this is not a request frame at all");
    assert!(!got.output.status.success(), "{}", dump(&got.output));
    // The one-line error goes back as the reply when the reply channel
    // works, or else to stderr.
    let message = match got.reply() {
        Ok(Reply::Failed(msg)) => msg,
        Err(_) => stderr(&got.output),
        Ok(Reply::Finished(o)) => panic!("garbage ran something: {o:?}"),
    };
    assert!(
        !message.trim().is_empty(),
        "no error message\n{}",
        dump(&got.output)
    );
    assert_eq!(message.trim().lines().count(), 1, "not one line: {message}");
}
