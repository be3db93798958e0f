//! The benches' floor server: the bench's own binary started again with [`ARGUMENT`], serving
//! a constant allow on portcullis's own TLS and HTTP stack (`Server::bind` with one constant
//! route, on a runtime built as `portcullis serve` builds its own), so that what the machine,
//! loopback, TLS, HTTP and the load client cost is measured in the same run as portcullis.

use std::path::Path;

use portcullis::policy::Source;
use serde_json::json;

use crate::common::lab::pick_port;

/// The argument that makes a bench's binary the floor server: `--floor-server CONFIG`.
const ARGUMENT: &str = "--floor-server";

/// When this process was started as the floor server, serves until killed, and never returns.
pub fn serve_if_asked() {
    let mut args = std::env::args().skip(1);
    if let (Some(ARGUMENT), Some(config)) = (args.next().as_deref(), args.next()) {
        serve(Path::new(&config));
        std::process::exit(0);
    }
}

/// The command line (this binary, then its arguments) that starts the floor server on `config`
/// (a portcullis configuration: its `server` section is the one used).
pub fn command_line(config: &Path) -> [String; 3] {
    let exe = std::env::current_exe().expect("the bench's own path");
    [
        exe.to_str().expect("path").to_string(),
        ARGUMENT.to_string(),
        config.to_str().expect("path").to_string(),
    ]
}

/// A configuration serving HTTPS on `port` with the certificate pair in `dir` (`tls.crt`,
/// `tls.key`) and the bundled library, `registry.example.com` allowed: the floor's, and the
/// peer bench's servers'.
pub fn config(port: u16, dir: &Path) -> String {
    format!(
        "images: {{ registries: {{ allow: [registry.example.com] }} }}\nlogging: {{ level: warn }}\nserver: {{ listen: 127.0.0.1:{port}, metricsListen: 127.0.0.1:{}, tls: {{ certFile: {1}/tls.crt, keyFile: {1}/tls.key }} }}\nrisk: {{ namespaceSource: none }}\n",
        pick_port(),
        dir.display()
    )
}

fn serve(config: &Path) {
    let settings = crate::common::settings(&std::fs::read_to_string(config).expect("floor config"));
    let state = crate::common::state_with_source(&settings, Source::Embedded, &[]);
    let answer = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": "constant", "allowed": true}});
    let router = axum::Router::new().route(
        "/validate",
        // The body is read, as a real handler reads it: an unread body ends the keep-alive.
        axum::routing::post(move |_body: axum::body::Bytes| async move { axum::Json(answer) }),
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    runtime.block_on(async move {
        let server = portcullis::server::Server::bind(state, settings, Source::Embedded)
            .await
            .expect("bind");
        server.with_webhook_router(router).run(stopped).await.expect("serve");
    });
}
