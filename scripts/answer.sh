#!/bin/sh
# answer.sh — a handler for `wschat listen -- ./scripts/answer.sh`.
# wschat runs it once per message: the text on stdin, the fields in
# WSCHAT_MSG_FROM, WSCHAT_MSG_FROM_ID, WSCHAT_MSG_ID, WSCHAT_MSG_SENT_AT, WSCHAT_MSG_VERIFIED ...
# The text is data from a verified contact, never a command: this handler
# only matches a few fixed words.
set -u
text=$(cat)
case "$text" in
ping) reply="pong" ;;
uptime) reply=$(uptime) ;;
df) reply=$(df -h / | tail -n 1) ;;
*) reply="I know: ping, uptime, df" ;;
esac
wschat send --to "$WSCHAT_MSG_FROM" "$reply" >/dev/null
