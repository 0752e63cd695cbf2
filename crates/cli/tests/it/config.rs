//! `qianbao serve --config`: a TOML file fills what neither flags nor environment variables
//! give (flags > environment > file > defaults), and a bad file stops the start with a clear
//! message instead of running on defaults.

use std::process::Command;

use crate::serve::{request, start_with};

#[test]
fn flags_beat_environment_beats_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("from-file");
    let config = dir.path().join("qianbao.toml");
    std::fs::write(
        &config,
        format!(
            "# every key is optional\n\
             listen = \"127.0.0.1:9\"\n\
             data_dir = {data_dir:?}\n\
             admin_tenant = \"from_file\"\n\
             rate_limit_per_sec = 1\n\
             rate_limit_burst = 1\n"
        ),
    )
    .expect("write config");
    let config_arg = ["--config".to_string(), config.display().to_string()];
    let (mut server, key) = start_with(&config_arg, &[("QIANBAO_ADMIN_TENANT", "from_env")], true);
    let key = key.expect("admin key");

    // The flag's port 0 (a free port), not the file's 9.
    assert!(!server.addr.ends_with(":9"), "listening on {}", server.addr);
    // The file's data directory.
    assert!(data_dir.join("ledger.db").exists(), "no ledger in the file's data_dir");
    // The environment's tenant, not the file's.
    let (status, body) = request(&server.addr, "GET", "/v1/keys", &key, "").expect("list keys");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"tenant\":\"from_env\""), "{body}");
    // The file's rate limit: one request per second, burst one, so an immediate second
    // request is refused with the documented error and a Retry-After.
    let (status, body) = request(&server.addr, "GET", "/v1/keys", &key, "").expect("list keys");
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("\"code\":\"rate_limited\""), "{body}");

    let _ = server.child.kill();
    let _ = server.child.wait();
}

#[test]
fn a_bad_config_file_stops_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("qianbao.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nratelimit = 5\n").expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_qianbao"))
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run qianbao");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("qianbao.toml") && stderr.contains("ratelimit"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing may start on a bad config");
}

/// Channels' terms come from the file: with bank_a charging 0.8% and bank_b 0.1%, equally
/// healthy, the router sends top-ups to the cheaper one (routing by cost).
#[test]
fn channel_terms_from_the_file_route_by_cost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("qianbao.toml");
    std::fs::write(
        &config,
        "[channel_terms.bank_a]\nfee_bps = 80\ntimeout_ms = 4000\n\
         [channel_terms.bank_a.limits]\nconcurrency_max = 32\n\
         [channel_terms.bank_b]\nfee_bps = 10\nfee_fixed_minor = 0\n\
         [channel_terms.bank_b.breaker]\nerror_permille_open = 400\n",
    )
    .expect("write config");
    let config = config.display().to_string();
    let world = crate::payments::World::start(&["bank_a", "bank_b"], &["--config", &config]);
    for n in 0..4 {
        let topup = world.topup(&format!("cheap-{n}"), 10_000);
        assert_eq!(topup["state"]["channel"], serde_json::json!("bank_b"), "{topup}");
    }
}

#[test]
fn channel_terms_for_a_channel_not_served_stop_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("qianbao.toml");
    std::fs::write(&config, "[channel_terms.bank_z]\nfee_bps = 10\n").expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_qianbao"))
        .args(["serve", "--listen", "127.0.0.1:0", "--banksim-url", "http://127.0.0.1:9"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run qianbao");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("[channel_terms.bank_z]"), "{stderr}");
}
