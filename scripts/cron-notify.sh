#!/bin/sh
# cron-notify.sh — tell a human when a job finishes. For crontab:
#   0 3 * * * WSCHAT_HOME=/home/me/.config/wschat /usr/local/bin/cron-notify.sh alice /usr/local/bin/backup.sh
# Sends the job's exit status and the last lines of its output. A message
# the relay could not take stays in the outbox and goes out with the next
# wschat command, so a flaky network does not lose the notice.
set -u
to=$1; shift
out=$("$@" 2>&1); status=$?
host=$(hostname)
if [ "$status" -eq 0 ]; then verdict="ok"; else verdict="FAILED (exit $status)"; fi
printf '%s on %s: %s\n\n%s\n' "$*" "$host" "$verdict" "$(printf '%s\n' "$out" | tail -n 20)" |
	wschat send --to "$to" --timeout 20s >/dev/null
exit "$status"
