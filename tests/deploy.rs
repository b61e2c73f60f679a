//! The deployment files agree with the compose specification and with
//! each other: every bridge replica has its own spool volume, sits behind
//! the load balancer, is scraped by Prometheus, and gets more time to stop
//! than the bridge's drain deadline; broker data lives in named volumes,
//! every long-running service comes back after a reboot, only the load
//! balancer is published on every interface, and the topic takes the
//! largest callback the bridge accepts; the HAProxy file passes
//! `haproxy -c`. Kubernetes: `tests/kubernetes.rs`. (No Docker engine runs
//! here: these read the files.)

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
    assert_eq!(
        doc["services"]["load-balancer"]["volumes"][0].as_str(),
        Some("./deploy/haproxy:/usr/local/etc/haproxy:ro"),
        "compose runs the shipped HAProxy file, from a folder mount (a file mount keeps the old inode after an edit)"
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

/// `haproxy -c` on `config`: its exit status and what it printed.
fn haproxy_check(config: &std::path::Path) -> (bool, String) {
    let output = std::process::Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(config)
        .output()
        .expect("haproxy (scripts/test installs it: apt-get install haproxy)");
    let printed = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    (output.status.success(), printed)
}

/// The shipped file is valid as shipped (its replica names do not resolve
/// here: those servers start out down, the only warning allowed) and as the
/// loopback copy the operations test and the pipeline test run, with no
/// warning at all. Debian's HAProxy 2.6 checks it; compose runs 2.8.
#[test]
fn the_shipped_haproxy_file_passes_haproxy_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = root.join("deploy/haproxy/haproxy.cfg");
    let (valid, printed) = haproxy_check(&shipped);
    assert!(valid, "haproxy -c {}: {printed}", shipped.display());
    for line in printed.lines().filter(|line| line.contains("[WARNING]")) {
        assert!(
            line.contains("could not resolve address 'bridge-"),
            "haproxy -c warns: {line}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let ports = openim_bridge_test_kit::haproxy::Ports {
        frontend: openim_bridge_test_kit::free_port(),
        stats: openim_bridge_test_kit::free_port(),
    };
    let servers = [
        ("bridge-1".to_owned(), 18081),
        ("bridge-2".to_owned(), 18082),
    ];
    let loopback = dir.path().join("haproxy.cfg");
    std::fs::write(
        &loopback,
        openim_bridge_test_kit::haproxy::loopback_config(
            &read("deploy/haproxy/haproxy.cfg"),
            ports,
            &servers,
            dir.path(),
        ),
    )
    .unwrap();
    let (valid, printed) = haproxy_check(&loopback);
    assert!(
        valid && !printed.contains("[WARNING]") && !printed.contains("[ALERT]"),
        "haproxy -c on the loopback copy: {printed}"
    );
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

/// Room for what an event adds to its callback's body: the CloudEvents
/// headers, the key, the `data` fields the bridge adds (event id, type,
/// conversation, times) and Kafka's record overhead. A few hundred bytes
/// in practice; 16 KiB leaves room for long ids.
const ENVELOPE_BYTES: usize = 16 * 1024;

/// Services that run once and exit (others wait for them to complete).
fn one_shot(doc: &Value) -> Vec<String> {
    let mut names: Vec<String> = doc["services"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|service| service["depends_on"].as_object())
        .flat_map(|deps| deps.iter())
        .filter(|(_, dep)| dep["condition"] == "service_completed_successfully")
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Where a service keeps what must outlive its container, by image; None
/// for a service that keeps nothing (the load balancer).
fn data_path(name: &str, service: &Value) -> Option<String> {
    let image = service["image"].as_str().unwrap_or("");
    let entrypoint = service["entrypoint"].to_string();
    if entrypoint.contains("openim-sync") {
        // Keeps nothing itself: its state is PostgreSQL's.
        return None;
    }
    if service.get("build").is_some() {
        return Some("/var/lib/openim-bridge/spool".to_owned());
    }
    if image.starts_with("apache/kafka") {
        // The image writes to /tmp/kafka-logs unless told otherwise.
        let dirs = service["environment"]["KAFKA_LOG_DIRS"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: KAFKA_LOG_DIRS is not set: the logs go to /tmp/kafka-logs inside the container"));
        return Some(dirs.to_owned());
    }
    if image.starts_with("rabbitmq") {
        return Some("/var/lib/rabbitmq".to_owned());
    }
    if image.starts_with("prom/prometheus") {
        return Some("/prometheus".to_owned());
    }
    if image.starts_with("postgres") {
        return Some("/var/lib/postgresql/data".to_owned());
    }
    if image.starts_with("haproxy") || image.starts_with("otel/opentelemetry-collector") {
        return None;
    }
    if image.starts_with("jaegertracing") {
        // A viewer of recent traces, in memory (an archive goes behind the
        // collector).
        return None;
    }
    panic!("{name} ({image}): say in tests/deploy.rs where its data lives");
}

/// The named volume mounted at `path` or above it, if any.
fn named_volume_at(doc: &Value, service: &Value, path: &str) -> Option<String> {
    service["volumes"].as_array()?.iter().find_map(|volume| {
        let mut parts = volume.as_str()?.split(':');
        let (source, target) = (parts.next()?, parts.next()?);
        let inside =
            path == target || path.starts_with(&format!("{}/", target.trim_end_matches('/')));
        (inside && doc["volumes"].get(source).is_some()).then(|| source.to_owned())
    })
}

#[test]
fn every_stateful_service_keeps_its_data_in_a_named_volume() {
    let doc = compose();
    let skip = one_shot(&doc);
    let mut checked = 0;
    for (name, service) in doc["services"].as_object().unwrap() {
        if skip.contains(name) {
            continue;
        }
        let Some(path) = data_path(name, service) else {
            continue;
        };
        assert!(
            named_volume_at(&doc, service, &path).is_some(),
            "{name}: its data ({path}) is not in a named volume: `docker compose down` then `up` loses it"
        );
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} stateful services found");
    // The check can fail: Kafka without KAFKA_LOG_DIRS writes to /tmp.
    let mut broken = doc.clone();
    broken["services"]["kafka"]["environment"]["KAFKA_LOG_DIRS"] = Value::from("/tmp/kafka-logs");
    assert_eq!(
        named_volume_at(&broken, &broken["services"]["kafka"], "/tmp/kafka-logs"),
        None
    );
}

#[test]
fn every_long_running_service_restarts_after_a_reboot() {
    let doc = compose();
    let skip = one_shot(&doc);
    assert_eq!(skip, ["kafka-topics"], "one-shot services");
    for (name, service) in doc["services"].as_object().unwrap() {
        if skip.contains(name) {
            continue;
        }
        let restart = service["restart"].as_str().unwrap_or("no");
        assert!(
            ["always", "unless-stopped"].contains(&restart),
            "{name}: restart `{restart}`: after a reboot or a Docker restart it stays down"
        );
    }
}

#[test]
fn the_broker_hostnames_are_fixed() {
    let doc = compose();
    // RabbitMQ names its data directory after the host (rabbit@HOST); Kafka
    // keeps its cluster id in the data it formatted.
    assert_eq!(doc["services"]["rabbitmq"]["hostname"], "rabbitmq");
    assert!(
        doc["services"]["kafka"]["environment"]["CLUSTER_ID"].is_string(),
        "kafka: CLUSTER_ID"
    );
}

/// The host address a `ports` entry binds ("" for all interfaces).
fn published_on(port: &Value) -> String {
    match port {
        Value::Object(long) => long["host_ip"].as_str().unwrap_or("").to_owned(),
        Value::String(short) => {
            // [HOST_IP:]HOST_PORT:CONTAINER_PORT, IPv6 in brackets.
            let parts: Vec<&str> = short.rsplitn(3, ':').collect();
            if parts.len() == 3 {
                parts[2].trim_matches(['[', ']']).to_owned()
            } else {
                String::new()
            }
        }
        other => other.to_string(),
    }
}

#[test]
fn only_the_load_balancer_is_published_on_every_interface() {
    let doc = compose();
    let mut local = 0;
    for (name, service) in doc["services"].as_object().unwrap() {
        for port in service["ports"].as_array().into_iter().flatten() {
            let host = published_on(port);
            if name == "load-balancer" {
                continue;
            }
            assert!(
                host == "127.0.0.1" || host == "::1",
                "{name}: port {port} is published on every interface"
            );
            local += 1;
        }
    }
    assert!(local >= 4, "{local}");
    assert_eq!(published_on(&Value::from("9092:9092")), "");
    assert_eq!(published_on(&Value::from("0.0.0.0:9092:9092")), "0.0.0.0");
    assert_eq!(published_on(&Value::from("[::1]:9092:9092")), "::1");
}

/// Every `max.message.bytes=N` the topic service's command sets.
fn topic_limits(service: &Value) -> Vec<usize> {
    let command = serde_json::to_string(&service["command"]).unwrap();
    command
        .split("max.message.bytes=")
        .skip(1)
        .map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap()
        })
        .collect()
}

#[test]
fn the_topic_takes_the_largest_callback_the_bridge_accepts() {
    let doc = compose();
    let (_, bridge) = bridges(&doc).remove(0);
    let env: std::collections::HashMap<String, String> = bridge["environment"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, value)| (key.clone(), value.as_str().unwrap().to_owned()))
        .collect();
    let settings = Settings::load(None, Some(env)).expect("the bridges' settings load");
    let topics = &doc["services"]["kafka-topics"];
    let limits = topic_limits(topics);
    assert!(
        limits.len() >= 2,
        "max.message.bytes at creation and on an existing topic: {limits:?}"
    );
    for limit in limits {
        assert!(
            limit >= settings.http.max_body_bytes + ENVELOPE_BYTES,
            "topic max.message.bytes {limit} < http.max_body_bytes {} + envelope: larger callbacks are only dead-lettered",
            settings.http.max_body_bytes
        );
    }
    assert!(
        topics["command"][0]
            .as_str()
            .unwrap()
            .contains(&format!("--topic {}", settings.kafka.topic)),
        "kafka-topics creates the bridges' topic"
    );
}

#[test]
fn the_tracing_profile_points_every_program_at_its_collector() {
    let doc = compose();
    let services = &doc["services"];
    for name in ["otel-collector", "jaeger"] {
        assert_eq!(services[name]["profiles"][0], "tracing", "{name}");
    }
    // The collector takes OTLP both ways and sends traces on to Jaeger.
    let config: Value =
        serde_yaml_ng::from_str(&read("deploy/otel-collector/config.yaml")).unwrap();
    let protocols = &config["receivers"]["otlp"]["protocols"];
    assert_eq!(protocols["grpc"]["endpoint"], "0.0.0.0:4317");
    assert_eq!(protocols["http"]["endpoint"], "0.0.0.0:4318");
    let pipeline = &config["service"]["pipelines"]["traces"];
    assert_eq!(pipeline["receivers"][0], "otlp");
    let exporters: Vec<&str> = pipeline["exporters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let to_jaeger = exporters
        .iter()
        .find(|name| config["exporters"][**name]["endpoint"] == "jaeger:4317")
        .expect("an exporter to jaeger:4317");
    assert!(
        services.get("jaeger").is_some(),
        "{to_jaeger} needs the jaeger service"
    );
    // The bridges and openim-sync take the standard variables, off when
    // unset; with the endpoint the compose file's comment gives, both
    // export over gRPC to the collector.
    let sync = ("openim-sync".to_owned(), services["openim-sync"].clone());
    for (name, service) in bridges(&doc).into_iter().chain([sync]) {
        let env = &service["environment"];
        assert_eq!(
            env["OTEL_EXPORTER_OTLP_ENDPOINT"], "${OTEL_EXPORTER_OTLP_ENDPOINT:-}",
            "{name}"
        );
        let protocol = env["OTEL_EXPORTER_OTLP_PROTOCOL"].as_str().unwrap();
        let protocol = protocol
            .strip_prefix("${OTEL_EXPORTER_OTLP_PROTOCOL:-")
            .and_then(|rest| rest.strip_suffix('}'))
            .unwrap();
        let vars = |key: &str| match key {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://otel-collector:4317".to_owned()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some(protocol.to_owned()),
            _ => None,
        };
        let export = openim_otel::resolve(&Default::default(), &vars)
            .unwrap()
            .unwrap();
        assert_eq!(export.protocol, openim_otel::Protocol::Grpc, "{name}");
        assert!(services["otel-collector"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|port| port.as_str().unwrap().ends_with(":4317")));
        // Unset, tracing stays off.
        let unset = |_: &str| None;
        assert_eq!(openim_otel::resolve(&Default::default(), &unset), Ok(None));
    }
}
