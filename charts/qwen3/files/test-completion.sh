#!/bin/sh
# helm test: ask the deployed model for a real completion through the Service and check the answer.
# Environment (set by the chart): BASE_URL, MODEL_NAME, MAX_TOKENS, TIMEOUT, API_KEY_FILE (may be empty).
set -eu
fail() { echo "FAIL: $*" >&2; exit 1; }
auth=""
if [ -n "${API_KEY_FILE:-}" ]; then auth="Authorization: Bearer $(head -n 1 "$API_KEY_FILE")"; fi

echo "GET $BASE_URL/v1/models"
models=$(curl -fsS --max-time 10 ${auth:+-H "$auth"} "$BASE_URL/v1/models") || fail "GET /v1/models failed"
echo "$models"
case "$models" in *"\"$MODEL_NAME\""*) ;; *) fail "/v1/models does not list $MODEL_NAME" ;; esac

if [ -n "$auth" ]; then
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$BASE_URL/v1/models")
  [ "$code" = 401 ] || fail "without the API key /v1/models answered $code, expected 401"
  echo "without the API key: 401, as expected"
fi

body=$(printf '{"model": "%s", "messages": [{"role": "user", "content": "Reply with one word: ready?"}], "max_tokens": %s, "temperature": 0, "ignore_eos": true, "stream": false}' "$MODEL_NAME" "$MAX_TOKENS")
echo "POST $BASE_URL/v1/chat/completions $body"
answer=$(curl -fsS --max-time "$TIMEOUT" ${auth:+-H "$auth"} -H 'Content-Type: application/json' \
  -d "$body" "$BASE_URL/v1/chat/completions") || fail "POST /v1/chat/completions failed"
echo "$answer"
case "$answer" in *'"choices"'*'"message"'*) ;; *) fail "the answer has no choices[].message" ;; esac
tokens=$(printf '%s' "$answer" | sed -n 's/.*"completion_tokens": *\([0-9][0-9]*\).*/\1/p')
[ "${tokens:-0}" -ge 1 ] || fail "the answer reports no generated tokens (usage.completion_tokens: ${tokens:-missing})"
echo "PASS: $MODEL_NAME generated $tokens tokens"
