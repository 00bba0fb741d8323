# Shared helpers for pisec's shell entry points. Sourced, never executed.
# shellcheck shell=bash

pisec_log() { printf '\033[1;34m==> %s\033[0m\n' "$*" >&2; }
pisec_die() { printf 'pisec: error: %s\n' "$*" >&2; exit 1; }

# The Debian mirror this machine's apt already uses for its own release
# (bookworm or trixie). Containers built from it reach the same mirror, which
# carries every suite, and no mirror host name is written into the repo.
pisec_debian_mirror() {
  local uri="" codename
  codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
  case "$codename" in
    bookworm|trixie) ;;
    *) pisec_die "/etc/os-release: '$codename' is not Debian bookworm or trixie" ;;
  esac
  if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    uri=$(awk -v want="$codename" '
      function match_suite() { return u != "" && s ~ ("(^| )" want "( |$)") }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { if (match_suite()) { print u; exit } u=""; s=""; next }
      tolower($1) == "uris:" { u=$2 }
      tolower($1) == "suites:" { $1=""; s=$0 " " }
      END { if (match_suite()) print u }
    ' /etc/apt/sources.list.d/*.sources | grep -v -- '-security' | head -n1)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk -v want="$codename" '$1 == "deb" && $0 ~ (" " want " ") && $0 !~ /security/ {
      for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || pisec_die "/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list: no Debian $codename mirror found"
  printf '%s\n' "$uri"
}

# The simulated Pis' release and architecture, checked whole: PISEC_SUITE
# (default trixie) and PISEC_ARCH (default amd64).
pisec_suite() {
  local suite="${PISEC_SUITE:-trixie}"
  case "$suite" in
    bookworm|trixie) printf '%s\n' "$suite" ;;
    *) pisec_die "PISEC_SUITE: '$suite' is not one of: trixie, bookworm" ;;
  esac
}
pisec_arch() {
  local arch="${PISEC_ARCH:-amd64}"
  case "$arch" in
    amd64|arm64) printf '%s\n' "$arch" ;;
    *) pisec_die "PISEC_ARCH: '$arch' is not one of: amd64, arm64" ;;
  esac
}
# The Pis' mosquitto: empty for their release's own (2.0), or 2.1, which only
# Debian testing (forky) ships. forky's systemd needs cgroup v2, so a 2.1 Pi
# is a trixie Pi whose mosquitto packages come from forky.
pisec_mosquitto() {
  local version="${PISEC_MOSQUITTO:-}"
  case "$version" in
    "") ;;
    2.1) [ "$(pisec_suite)" = trixie ] || pisec_die "PISEC_MOSQUITTO=2.1 needs PISEC_SUITE=trixie" ;;
    *) pisec_die "PISEC_MOSQUITTO: '$version' is not empty or 2.1" ;;
  esac
  printf '%s\n' "$version"
}

# Debian's docker.io puts the client in /usr/bin; prefer it over any other
# client on PATH so that client and engine come from the same package.
pisec_docker() {
  if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi
}
