//! Loading and validating the whole settings tree.
use super::*;

fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn an_unknown_compression_is_refused_when_the_settings_load() {
    let err = load_err(&[("OPENIM_BRIDGE__KAFKA__COMPRESSION", "zstd")]);
    assert!(err.contains("zstd") && err.contains("`lz4`"), "{err}");
    let settings =
        Settings::load(None, env(&[("OPENIM_BRIDGE__KAFKA__COMPRESSION", "GZIP")])).unwrap();
    assert_eq!(settings.kafka.compression.word(), "gzip");
}

fn load_err(pairs: &[(&str, &str)]) -> String {
    Settings::load(None, env(pairs)).unwrap_err().to_string()
}

#[test]
fn defaults_need_no_broker() {
    let settings = Settings::load(None, env(&[])).unwrap();
    assert_eq!(settings.sink.kind, SinkKind::Stdout);
    assert_eq!(settings.http.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(settings.kafka.topic, "openim.events");
    assert_eq!(settings.rabbitmq.routing_key, "{type}");
}

#[test]
fn environment_overrides_with_double_underscores() {
    let settings = Settings::load(
        None,
        env(&[
            ("OPENIM_BRIDGE__SINK__KIND", "kafka"),
            (
                "OPENIM_BRIDGE__KAFKA__BROKERS",
                "10.0.0.1:9092,10.0.0.2:9092",
            ),
            ("OPENIM_BRIDGE__HTTP__LISTEN", "127.0.0.1:9999"),
            ("OPENIM_BRIDGE__KAFKA__LINGER_MS", "20"),
        ]),
    )
    .unwrap();
    assert_eq!(settings.sink.kind, SinkKind::Kafka);
    assert_eq!(settings.kafka.brokers, "10.0.0.1:9092,10.0.0.2:9092");
    assert_eq!(settings.http.listen.port(), 9999);
    assert_eq!(settings.kafka.linger_ms, 20);
}

#[test]
fn file_then_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.toml");
    std::fs::write(
        &path,
        "[sink]\nkind = \"rabbitmq\"\n[rabbitmq]\nexchange = \"from-file\"\nrouting_key = \"chat.{command}\"\n[kafka.options]\n\"queue.buffering.max.kbytes\" = 2048\n",
    )
    .unwrap();
    let settings = Settings::load(
        Some(&path),
        env(&[("OPENIM_BRIDGE__RABBITMQ__EXCHANGE", "from-env")]),
    )
    .unwrap();
    assert_eq!(settings.sink.kind, SinkKind::Rabbitmq);
    assert_eq!(settings.rabbitmq.exchange, "from-env");
    assert_eq!(settings.rabbitmq.routing_key, "chat.{command}");
    assert_eq!(settings.kafka.options["queue.buffering.max.kbytes"], "2048");
}

#[test]
fn errors_name_the_key() {
    let err = load_err(&[("OPENIM_BRIDGE__SINK__KIND", "kafak")]);
    assert!(err.contains("kafak") && err.contains("sink.kind"), "{err}");
    let err = load_err(&[("OPENIM_BRIDGE__HTTP__LISTEN", "localhost")]);
    assert!(err.contains("http.listen"), "{err}");
    let err = load_err(&[("OPENIM_BRIDGE__HTTP__LISTNE", "0.0.0.0:1")]);
    assert!(err.contains("listne"), "{err}");
}

#[test]
fn an_unreadable_file_is_named_and_its_error_kept_as_the_source() {
    use std::error::Error;
    let err = Settings::load(
        None,
        env(&[(
            "OPENIM_BRIDGE__KAFKA__SASL_PASSWORD_FILE",
            "/nonexistent/pw",
        )]),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("kafka.sasl_password_file") && text.contains("/nonexistent/pw"),
        "{text}"
    );
    let io = err
        .source()
        .and_then(|cause| cause.downcast_ref::<std::io::Error>());
    assert_eq!(
        io.map(std::io::Error::kind),
        Some(std::io::ErrorKind::NotFound)
    );

    let err = Settings::load(
        None,
        env(&[
            (
                "OPENIM_BRIDGE__HTTP__TLS_CERT_FILE",
                "/nonexistent/cert.pem",
            ),
            ("OPENIM_BRIDGE__HTTP__TLS_KEY_FILE", "/nonexistent/key.pem"),
        ]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("http.tls_cert_file"), "{err}");
    let tls = err
        .source()
        .and_then(|cause| cause.downcast_ref::<tls::TlsError>());
    assert!(tls.is_some_and(|tls| tls.source().is_some()), "{err:?}");
}

#[test]
fn contradictory_values_are_rejected() {
    let err = load_err(&[
        ("OPENIM_BRIDGE__SINK__KIND", "kafka"),
        ("OPENIM_BRIDGE__KAFKA__TOPIC", "a topic"),
    ]);
    assert!(err.contains("kafka.topic"), "{err}");
    let err = load_err(&[
        ("OPENIM_BRIDGE__SINK__KIND", "rabbitmq"),
        ("OPENIM_BRIDGE__RABBITMQ__URL", "http://x"),
    ]);
    assert!(err.contains("rabbitmq.url"), "{err}");
    let err = load_err(&[
        ("OPENIM_BRIDGE__SINK__KIND", "rabbitmq"),
        ("OPENIM_BRIDGE__RABBITMQ__ROUTING_KEY", "{group}"),
    ]);
    assert!(err.contains("rabbitmq.routing_key"), "{err}");
    let err = load_err(&[("OPENIM_BRIDGE__SPOOL__MAX_BYTES", "1000")]);
    assert!(err.contains("spool.max_bytes"), "{err}");
    // A body the spool could not read back once acked.
    let err = load_err(&[
        ("OPENIM_BRIDGE__HTTP__MAX_BODY_BYTES", "67108864"),
        ("OPENIM_BRIDGE__SPOOL__MAX_BYTES", "1099511627776"),
    ]);
    assert!(
        err.contains("http.max_body_bytes") && err.contains("32 MiB"),
        "{err}"
    );
    let err = load_err(&[("OPENIM_BRIDGE__SPOOL__ACK", "fast")]);
    assert!(
        err.contains("spool.ack") && err.contains("durable"),
        "{err}"
    );
}

#[test]
fn allowlist_from_the_environment() {
    let settings = Settings::load(
        None,
        env(&[("OPENIM_BRIDGE__HTTP__ALLOW_IPS", "10.0.0.0/8,127.0.0.1")]),
    )
    .unwrap();
    let nets = settings.allow_ips();
    assert_eq!(nets.len(), 2);
    assert!(nets[1].contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap()));
    let err = load_err(&[("OPENIM_BRIDGE__HTTP__ALLOW_IPS", "10.0.0.300/8")]);
    assert!(
        err.contains("http.allow_ips") && err.contains("10.0.0.300/8"),
        "{err}"
    );
    let err = load_err(&[("OPENIM_BRIDGE__HTTP__AUTH_TOKEN", "short")]);
    assert!(err.contains("http.auth_token"), "{err}");
}

#[test]
fn routes_and_filters_load_from_toml_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let load = |text: &str| {
        let path = dir.path().join("bridge.toml");
        std::fs::write(&path, text).unwrap();
        Settings::load(Some(&path), env(&[]))
    };
    let settings = load(
        "[[routes]]\nmatch = \"io.openim.group.*\"\nkafka_topic = \"openim.group\"\n[filter]\nexclude_content_types = [113, \"200-300\"]\n",
    )
    .unwrap();
    let raw: &Settings = &settings;
    assert_eq!(raw.routes[0].kafka_topic.as_deref(), Some("openim.group"));
    assert_eq!(raw.filter.exclude_content_types.len(), 2);
    let group = crate::normalize::CallbackKind::GROUP_MESSAGE_SENT;
    assert_eq!(&*settings.routes().route(group).kafka_topic, "openim.group");
    let refused = |text: &str, needles: &[&str]| {
        let err = load(text).unwrap_err().to_string();
        assert!(needles.iter().all(|n| err.contains(n)), "{err}");
    };
    refused(
        "[[routes]]\nmatch = \"io.openim.nope\"\n",
        &["routes", "io.openim.nope"],
    );
    refused(
        "[filter]\ncontent_types = [\"abc\"]\n",
        &["filter.content_types", "abc"],
    );
    refused(
        "[[routes]]\nmatch = \"*\"\nkafka_topic = \"bad topic\"\n",
        &["kafka_topic"],
    );
}

#[test]
fn example_file_documents_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/openim-bridge.example.toml");
    let example = Settings::load(Some(&path), env(&[])).unwrap();
    let defaults = Settings::load(None, env(&[])).unwrap();
    assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
    assert_eq!(defaults.spool.dir, Path::new("spool/8080"));
}

#[test]
fn loss_enabling_kafka_options_are_rejected() {
    let mut settings = Settings::default();
    settings.sink.kind = SinkKind::Kafka;
    settings.kafka.options.insert("acks".into(), "1".into());
    let err = settings.clone().validate().unwrap_err().to_string();
    assert!(
        err.contains("kafka.options") && err.contains("acks"),
        "{err}"
    );
    settings.kafka.options.insert("acks".into(), "all".into());
    settings.validate().unwrap();
}

/// Broker security keys: TLS, SASL and secret files.
mod security {
    use std::collections::HashMap;

    use super::*;

    /// Settings from the environment `pairs`; pairs whose key has a dot
    /// (`kafka.options`) go into a TOML file, as users write them.
    fn load(pairs: &[(&str, &str)]) -> Result<Validated, String> {
        let (options, env): (Vec<_>, Vec<_>) = pairs.iter().partition(|(k, _)| k.contains('.'));
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bridge.toml");
        let mut toml = "[kafka.options]\n".to_owned();
        for (key, value) in options {
            toml += &format!("{:?} = {value:?}\n", key.to_ascii_lowercase());
        }
        std::fs::write(&file, toml).unwrap();
        Settings::load(Some(&file), Some(env)).map_err(|err| err.to_string())
    }

    #[test]
    fn secrets_come_from_files_and_never_show() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("kafka-password");
        std::fs::write(&password, "s3cr3t-Kafka-pw\n").unwrap();
        let amqp = dir.path().join("amqp-password");
        std::fs::write(&amqp, "s3cr3t-Amqp-pw").unwrap();
        let settings = load(&[
            ("OPENIM_BRIDGE__SINK__KIND", "kafka"),
            ("OPENIM_BRIDGE__KAFKA__SECURITY_PROTOCOL", "SASL_SSL"),
            ("OPENIM_BRIDGE__KAFKA__SASL_MECHANISM", "SCRAM-SHA-512"),
            ("OPENIM_BRIDGE__KAFKA__SASL_USERNAME", "bridge"),
            (
                "OPENIM_BRIDGE__KAFKA__SASL_PASSWORD_FILE",
                password.to_str().unwrap(),
            ),
            (
                "OPENIM_BRIDGE__RABBITMQ__URL",
                "amqps://user:s3cr3t-Url-pw@mq:5671/%2f",
            ),
            (
                "OPENIM_BRIDGE__RABBITMQ__PASSWORD_FILE",
                amqp.to_str().unwrap(),
            ),
            ("ssl.key.password", "s3cr3t-Opt-pw"),
        ])
        .unwrap();
        let kafka = &settings.kafka;
        assert_eq!(kafka.security_protocol, SecurityProtocol::SaslSsl);
        assert_eq!(kafka.sasl_mechanism, SaslMechanism::ScramSha512);
        assert_eq!(
            kafka.sasl_password.as_ref().unwrap().expose(),
            "s3cr3t-Kafka-pw"
        );
        assert_eq!(
            settings.rabbitmq.password.as_ref().unwrap().expose(),
            "s3cr3t-Amqp-pw"
        );
        let shown = format!("{settings:?} {settings:#?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("user:***@mq"), "{shown}");
    }

    #[test]
    fn contradictions_name_the_key_to_change() {
        let refused = |pairs: &[(&str, &str)], needles: &[&str]| {
            let mut all = vec![("OPENIM_BRIDGE__SINK__KIND", "kafka")];
            all.extend_from_slice(pairs);
            let err = load(&all).unwrap_err();
            assert!(needles.iter().all(|n| err.contains(n)), "{err}");
        };
        refused(
            &[("OPENIM_BRIDGE__KAFKA__SASL_USERNAME", "u")],
            &["kafka.security_protocol", "sasl_ssl"],
        );
        refused(
            &[("OPENIM_BRIDGE__KAFKA__SECURITY_PROTOCOL", "sasl_ssl")],
            &["kafka.sasl_username", "kafka.sasl_password"],
        );
        refused(
            &[
                ("OPENIM_BRIDGE__KAFKA__SECURITY_PROTOCOL", "sasl_ssl"),
                ("OPENIM_BRIDGE__KAFKA__SASL_MECHANISM", "oauthbearer"),
            ],
            &["kafka.sasl_oauthbearer_token"],
        );
        refused(
            &[("OPENIM_BRIDGE__KAFKA__SSL_CA_FILE", "/etc/hostname")],
            &["kafka.security_protocol", "ssl"],
        );
        refused(
            &[
                ("OPENIM_BRIDGE__KAFKA__SECURITY_PROTOCOL", "ssl"),
                ("OPENIM_BRIDGE__KAFKA__SSL_CA_FILE", "/nonexistent/ca.pem"),
            ],
            &["kafka.ssl_ca_file", "/nonexistent/ca.pem"],
        );
        refused(
            &[
                ("OPENIM_BRIDGE__KAFKA__SECURITY_PROTOCOL", "ssl"),
                ("security.protocol", "SSL"),
            ],
            &["kafka.options", "security.protocol", "one place"],
        );
        refused(
            &[
                ("OPENIM_BRIDGE__KAFKA__SECURITY_PROTOCOL", "sasl_ssl"),
                ("OPENIM_BRIDGE__KAFKA__SASL_USERNAME", "u"),
                ("OPENIM_BRIDGE__KAFKA__SASL_PASSWORD", "p"),
                ("OPENIM_BRIDGE__KAFKA__SASL_PASSWORD_FILE", "/etc/hostname"),
            ],
            &["kafka.sasl_password", "both"],
        );
        refused(
            &[("OPENIM_BRIDGE__KAFKA__SECURITY_PROTOCOL", "tls")],
            &["kafka.security_protocol", "sasl_ssl"],
        );
        let err = load(&[
            ("OPENIM_BRIDGE__SINK__KIND", "rabbitmq"),
            ("OPENIM_BRIDGE__RABBITMQ__TLS_CA_FILE", "/etc/hostname"),
        ])
        .unwrap_err();
        assert!(
            err.contains("rabbitmq.url") && err.contains("amqps://"),
            "{err}"
        );
        // The old passthrough form still works on its own.
        load(&[
            ("OPENIM_BRIDGE__SINK__KIND", "kafka"),
            ("security.protocol", "SASL_SSL"),
        ])
        .unwrap();
    }
}
