//! Container images for tests, built here from Debian's busybox-static
//! with umoci and pushed to a test registry with skopeo: no Docker, no
//! network.

use std::path::Path;
use std::process::Command;

use super::registry::TestRegistry;

/// Runs a shell script, panicking with its stderr on failure.
pub fn sh(script: &str) {
    let out = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}\nfailed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A busybox httpd image serving `/www` on port 8080, with CGI scripts
/// under `/www/cgi-bin` that report on the container from inside; pushed
/// as `<registry>/<repository>`. Returns the reference.
pub fn busybox_httpd(registry: &TestRegistry, repository: &str, work: &Path) -> String {
    let layout = work.join("layout");
    let bundle = work.join("bundle");
    let reference = registry.reference(repository);
    sh(&format!(
        r#"
umoci init --layout {l}
umoci new --image {l}:httpd
umoci unpack --image {l}:httpd {b}
r={b}/rootfs
mkdir -p $r/bin $r/www/cgi-bin $r/etc $r/tmp
cp "$(command -v busybox)" $r/bin/busybox
for tool in sh cat ps ls kill hostname id; do ln -s busybox $r/bin/$tool; done
echo 'root:x:0:0:root:/root:/bin/sh' > $r/etc/passwd
echo 'www:x:33:33:www:/www:/bin/sh' >> $r/etc/passwd
echo 'root:x:0:' > $r/etc/group
echo 'www:x:33:' >> $r/etc/group
echo 'hello from busybox' > $r/www/index.html
mkdir -p $r/www/legacy && echo 'legacy page' > $r/www/legacy/index.html
cgi() {{ printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\n%s\n' "$2" > $r/www/cgi-bin/$1; chmod 755 $r/www/cgi-bin/$1; }}
cgi ps 'ps -o pid,comm'
cgi net 'cat /proc/net/dev'
cgi whoami 'id; hostname'
cgi mounts 'cat /proc/self/mounts'
cgi crash 'kill -9 1'
cgi env 'echo "GREETING=$GREETING"'
umoci repack --image {l}:httpd {b}
umoci config --image {l}:httpd --os linux --architecture amd64 \
  --config.entrypoint /bin/busybox \
  --config.cmd httpd --config.cmd -f --config.cmd -p --config.cmd 8080 --config.cmd -h --config.cmd /www \
  --config.exposedports 8080/tcp --config.user www
skopeo copy --quiet --dest-tls-verify=false oci:{l}:httpd docker://{reference}
"#,
        l = layout.display(),
        b = bundle.display(),
    ));
    reference
}
