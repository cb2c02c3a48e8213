//! The `raftkv` client commands against a real cluster, with the exit statuses scripts rely
//! on.

use crate::common::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_talks_to_the_cluster_with_exit_codes_scripts_can_rely_on() {
    let cluster = TestCluster::start(3, &[]).await;
    let endpoints = cluster.endpoints().join(",");
    let run = move |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .arg("--endpoints")
            .arg(&endpoints)
            .args(args)
            .output()
            .expect("raftkv runs");
        (
            output.status.code().expect("exited"),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let blocking = tokio::task::spawn_blocking(move || {
        let (code, stdout, _) = run(&["put", "colour", "blue"]);
        assert_eq!(code, 0);
        assert!(stdout.starts_with("OK index="), "{stdout}");
        assert_eq!(
            run(&["get", "colour"]),
            (0, "blue\n".to_string(), String::new())
        );
        let (code, _, stderr) = run(&["get", "no-such-key"]);
        assert_eq!(code, 1, "{stderr}");
        let (code, _, stderr) = run(&["cas", "colour", "--expect", "red", "--value", "green"]);
        assert_eq!(
            (code, stderr.trim()),
            (1, "raftkv: not swapped; current: blue")
        );
        assert_eq!(
            run(&["cas", "colour", "--expect", "blue", "--value", "green"]).0,
            0
        );
        assert_eq!(run(&["append", "colour", "ish"]).0, 0);
        let (code, stdout, _) = run(&["scan", "--prefix", "col"]);
        assert_eq!((code, stdout.as_str()), (0, "colour\tgreenish\n"));
        let (code, stdout, _) = run(&["status"]);
        assert_eq!(code, 0);
        assert_eq!(
            stdout.lines().count(),
            4,
            "a header and a row per node: {stdout}"
        );
        assert!(stdout.contains("leader"), "{stdout}");
        assert_eq!(run(&["delete", "colour"]).0, 0);
        assert_eq!(run(&["cas", "colour"]).0, 2, "usage error");
    });
    blocking.await.expect("the command-line checks pass");
    // Nothing listens on port 1: unavailable.
    let output = tokio::task::spawn_blocking(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .args(["--endpoints", "127.0.0.1:1", "status"])
            .output()
            .expect("raftkv runs")
    })
    .await
    .expect("runs");
    assert_eq!(output.status.code(), Some(3));
}
