//! The deployment files agree with the compose specification and with
//! each other: every bridge replica has its own spool volume, sits behind
//! the load balancer, is scraped by Prometheus, and gets more time to stop
//! than the bridge's drain deadline.

use std::path::Path;

use openim_bridge::Settings;
use serde_json::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// docker-compose.yml with YAML anchors and merge keys (`<<: *bridge`)
/// resolved, as compose itself reads it.
fn compose() -> Value {
    let mut yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML");
    yaml.apply_merge().expect("merge keys resolve");
    serde_json::to_value(yaml).unwrap()
}

fn compose_errors(doc: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(&read("tests/schemas/compose-spec.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("compose schema compiles");
    validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// The bridge services (`bridge-N`), after YAML merge keys are applied.
fn bridges(doc: &Value) -> Vec<(String, Value)> {
    doc["services"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.starts_with("bridge-"))
        .map(|(name, service)| (name.clone(), service.clone()))
        .collect()
}

#[test]
fn compose_file_follows_the_compose_specification() {
    let doc = compose();
    let errors = compose_errors(&doc);
    assert!(errors.is_empty(), "{errors:#?}");
    // The check itself can fail: a broken file is reported.
    let mut broken = doc.clone();
    broken["services"]["load-balancer"]["ports"] = Value::from(8080);
    broken["services"]["prometheus"]["restart"] = Value::from(["always"]);
    assert_eq!(
        compose_errors(&broken).len(),
        2,
        "{:#?}",
        compose_errors(&broken)
    );
}

#[test]
fn every_replica_has_its_own_spool_and_time_to_drain() {
    let doc = compose();
    let bridges = bridges(&doc);
    assert!(bridges.len() >= 2, "two replicas behind the load balancer");
    let shutdown = Settings::default().shutdown;
    let drain_ms = shutdown.ready_delay_ms + shutdown.drain_timeout_ms;
    let mut spools = Vec::new();
    for (name, service) in &bridges {
        let volumes = service["volumes"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no volumes"));
        let spool = volumes
            .iter()
            .filter_map(Value::as_str)
            .find(|v| v.ends_with(":/var/lib/openim-bridge/spool"))
            .unwrap_or_else(|| panic!("{name} has no spool volume"));
        spools.push(spool.split(':').next().unwrap().to_owned());
        let grace = service["stop_grace_period"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: stop_grace_period"));
        let seconds: u64 = grace.trim_end_matches('s').parse().unwrap();
        assert!(
            seconds * 1000 > drain_ms,
            "{name}: stop_grace_period {grace} <= ready delay + drain {drain_ms} ms"
        );
        assert!(
            doc["volumes"].get(&spools[spools.len() - 1]).is_some(),
            "{name}: volume not declared"
        );
    }
    let mut unique = spools.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        spools.len(),
        "replicas share a spool: {spools:?}"
    );
}

#[test]
fn load_balancer_and_prometheus_know_every_replica() {
    let doc = compose();
    let haproxy = read("deploy/haproxy/haproxy.cfg");
    let prometheus = read("deploy/prometheus/prometheus.yml");
    assert!(
        doc["services"]["load-balancer"]["volumes"][0]
            .as_str()
            .is_some_and(|v| v.starts_with("./deploy/haproxy/haproxy.cfg:")),
        "compose runs the shipped HAProxy file"
    );
    for (name, _) in bridges(&doc) {
        assert!(
            haproxy.contains(&format!("server {name} {name}:8080")),
            "haproxy backend lacks {name}"
        );
        assert!(
            prometheus.contains(&format!("\"{name}:8080\"")),
            "prometheus lacks {name}"
        );
    }
}

#[test]
fn grafana_dashboard_uses_only_metrics_the_bridge_exports() {
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/openim-bridge.json")).unwrap();
    let stats = openim_bridge::stats::Stats::default();
    stats.init_series("kafka");
    let exported = stats.render();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 5);
    let mut checked = 0;
    for target in panels.iter().flat_map(|p| p["targets"].as_array().unwrap()) {
        let expr = target["expr"].as_str().unwrap();
        for name in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("openim_bridge_"))
        {
            // Samples are `family_total` (counters), `family_bucket` (histograms).
            let family = name.trim_end_matches("_total").trim_end_matches("_bucket");
            assert!(
                exported.contains(&format!("# TYPE {family} ")),
                "dashboard uses {name}, which the bridge does not export"
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} metric references found");
}

fn kubernetes_validate(files: &[std::path::PathBuf]) -> std::process::Output {
    let tool = std::env::var("OPENIM_BRIDGE_KUBERNETES_VALIDATE")
        .unwrap_or_else(|_| "kubernetes-validate".to_owned());
    std::process::Command::new(&tool)
        .args(["--strict", "--kubernetes-version", "1.33.0"])
        .args(files)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run {tool} ({err}): run scripts/test, which installs kubernetes-validate"
            )
        })
}

#[test]
fn kubernetes_manifests_pass_the_kubernetes_schemas() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let output = kubernetes_validate(&files);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    for kind in [
        "statefulset",
        "service",
        "configmap",
        "poddisruptionbudget",
        "horizontalpodautoscaler",
    ] {
        assert!(
            report.contains(&format!("passed for resource {kind}/")),
            "{kind} not validated:\n{report}"
        );
    }
    // The check can fail: an unknown field is refused in strict mode.
    let broken =
        std::env::temp_dir().join(format!("openim-bridge-broken-{}.yaml", std::process::id()));
    std::fs::write(
        &broken,
        read("deploy/kubernetes/pdb.yaml")
            .replace("minAvailable: 1", "minAvailable: 1\n  minimumAvailable: 1"),
    )
    .unwrap();
    let output = kubernetes_validate(std::slice::from_ref(&broken));
    std::fs::remove_file(broken).unwrap();
    assert!(!output.status.success(), "a broken manifest passed");
}

#[test]
fn kubernetes_config_loads_and_drains_within_the_grace_period() {
    let configmap: Value =
        serde_yaml_ng::from_str(&read("deploy/kubernetes/configmap.yaml")).unwrap();
    let toml = configmap["data"]["openim-bridge.toml"].as_str().unwrap();
    let path = std::env::temp_dir().join(format!("openim-bridge-k8s-{}.toml", std::process::id()));
    std::fs::write(&path, toml).unwrap();
    let settings = Settings::load(Some(&path), Some(Default::default()))
        .expect("the ConfigMap's settings load");
    std::fs::remove_file(path).unwrap();
    let statefulset: Value =
        serde_yaml_ng::from_str(&read("deploy/kubernetes/statefulset.yaml")).unwrap();
    let pod = &statefulset["spec"]["template"]["spec"];
    let grace_ms = pod["terminationGracePeriodSeconds"].as_u64().unwrap() * 1000;
    let shutdown = &settings.shutdown;
    assert!(
        shutdown.ready_delay_ms + shutdown.drain_timeout_ms < grace_ms,
        "ready delay {} ms + drain {} ms >= grace {grace_ms} ms",
        shutdown.ready_delay_ms,
        shutdown.drain_timeout_ms
    );
    let container = &pod["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    let readiness = &container["readinessProbe"];
    assert_eq!(readiness["httpGet"]["path"], "/readyz");
    // The endpoint is removed well within the ready delay.
    let notice_ms = readiness["periodSeconds"].as_u64().unwrap()
        * readiness["failureThreshold"].as_u64().unwrap_or(3)
        * 1000;
    assert!(
        notice_ms < shutdown.ready_delay_ms,
        "readiness notices shutdown after {notice_ms} ms, ready delay {} ms",
        shutdown.ready_delay_ms
    );
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "spool")
        .expect("spool mount");
    assert_eq!(
        mount["mountPath"].as_str().unwrap(),
        settings.spool.dir.to_str().unwrap()
    );
}

#[test]
fn kubernetes_takes_broker_passwords_from_the_secret() {
    let statefulset: Value =
        serde_yaml_ng::from_str(&read("deploy/kubernetes/statefulset.yaml")).unwrap();
    let env = statefulset["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let from_secret = |variable: &str| {
        let entry = env
            .iter()
            .find(|e| e["name"] == variable)
            .unwrap_or_else(|| panic!("{variable} is not set from the Secret"));
        let reference = &entry["valueFrom"]["secretKeyRef"];
        assert_eq!(reference["name"], "openim-bridge", "{variable}");
        assert_eq!(reference["optional"], true, "{variable}");
        reference["key"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        from_secret("OPENIM_BRIDGE__KAFKA__SASL_PASSWORD"),
        "kafka-password"
    );
    assert_eq!(
        from_secret("OPENIM_BRIDGE__RABBITMQ__PASSWORD"),
        "rabbitmq-password"
    );
    // The ConfigMap's commented managed-Kafka lines, uncommented, load with
    // the password the Secret puts in the environment.
    let configmap: Value =
        serde_yaml_ng::from_str(&read("deploy/kubernetes/configmap.yaml")).unwrap();
    let toml = configmap["data"]["openim-bridge.toml"]
        .as_str()
        .unwrap()
        .replace("# security_protocol", "security_protocol")
        .replace("# sasl_", "sasl_");
    let path = std::env::temp_dir().join(format!(
        "openim-bridge-k8s-sasl-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, toml).unwrap();
    let env = [(
        "OPENIM_BRIDGE__KAFKA__SASL_PASSWORD".to_owned(),
        "from-the-secret".to_owned(),
    )];
    let loaded = Settings::load(Some(&path), Some(env.into_iter().collect()));
    std::fs::remove_file(path).unwrap();
    let settings = loaded.expect("the secured ConfigMap loads");
    assert_eq!(
        settings.kafka.security_protocol,
        openim_bridge::settings::SecurityProtocol::SaslSsl
    );
    assert_eq!(
        settings.kafka.sasl_password.as_ref().unwrap().expose(),
        "from-the-secret"
    );
}
