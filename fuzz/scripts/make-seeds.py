#!/usr/bin/env python3
"""Writes the small seed corpora in fuzz/corpus/<target>/seed-*.

Seeds are real inputs (the shared UnionPay vectors, the sandbox certificates, the shipped
configuration files) or inputs built here in the exact wire layout each parser expects, so
the fuzzer starts past the framing. Run from anywhere; `shared/` is found beside the repo.
"""
import base64, io, json, os, struct, sys, zipfile, zlib

FUZZ = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(FUZZ)
VECTORS = os.path.join(os.path.dirname(REPO), "shared", "vectors")
CORPUS = os.path.join(FUZZ, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def read(*p):
    with open(os.path.join(*p), "rb") as f:
        return f.read()


def files(d, ext):
    if not os.path.isdir(d):
        return []
    return sorted(os.path.join(r, n) for r, _, ns in os.walk(d) for n in ns if n.endswith(ext))


# Certificates and PKCS#12.
for p in files(os.path.join(VECTORS, "unionpay-certs"), ".cer") + files(
    os.path.join(REPO, "src", "sandbox", "acp_certs"), ".cer"
):
    put("cert", os.path.basename(p), read(p))
for p in files(os.path.join(VECTORS, "unionpay-certs"), ".pfx"):
    put("pkcs12", os.path.basename(p), read(p))

# ACP replies (selector 0: raw body) and the notification (also as a form, selector 1).
for p in files(os.path.join(VECTORS, "unionpay-messages"), ".raw.txt"):
    raw = read(p)
    put("acp_message", os.path.basename(p), b"\x00" + raw)
    if b"notify" in os.path.basename(p).encode():
        from urllib.parse import quote

        form = "&".join(
            k + "=" + quote(v, safe="")
            for k, v in (kv.split("=", 1) for kv in raw.decode().strip().split("&"))
        )
        put("acp_message", os.path.basename(p) + ".form", b"\x01" + form.encode())

# ZM reconciliation records: the layout of recon.rs ZM_WIDTHS.
W = [3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2, 2, 6, 2, 4, 32, 1,
     21, 15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1, 32, 98]
vals = {0: "S22", 1: "00010000", 2: "00010000", 3: "784649", 4: "0105145046",
        5: "6216***********0018", 6: "000000001234", 7: "5311", 8: "08",
        9: "442401051450467846498", 11: "pay20240105145046", 12: "01",
        15: "D000000000007", 16: "C000000001227", 17: "0001", 19: "01", 20: "06",
        21: "000000", 22: "01", 27: "777290058167151", 32: "C000000001227", 33: "T0000001"}
line = " ".join(vals.get(i, "").ljust(w) for i, w in enumerate(W))
zm = (line + "\r\n" + line.replace("S22", "S30") + "\r\n").encode()
put("recon", "zm", zm)
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("INN24010588ZM_777290058167151", zm)
    z.writestr("INN24010588ZME_777290058167151", b"error file")
put("recon", "zip", buf.getvalue())
put("recon", "file-content", base64.b64encode(zlib.compress(buf.getvalue())))

# Aggregator: selector 0 notification form, 1 reply as sent, 2 reply re-signed (then op bits).
put("aggregator", "notify", b"\x00" + b"mch_id=00000001&out_trade_no=PT000120261122100000001"
    b"&total_fee=1250&state=SUCCESS&result_code=SUCCESS&pay_result=0&transaction_id=42&sign=AB")
for op in range(6):
    put("aggregator", f"paid-{op}", bytes([2 + (op << 2)]) + json.dumps({
        "state": "SUCCESS", "code": "0000", "trade_state": "SUCCESS", "msg": "ok",
        "out_trade_no": "PT000120261122100000001", "total_fee": "1250",
        "out_refund_no": "PTR0001", "refund_status": "SUCCESS", "FullName": "x",
        "authinfo": "a", "sign": "00"}).encode())

# ChinaUMS: selector (op in the low bits), header line, JSON body.
for op in range(8):
    put("chinaums", f"reply-{op}", bytes([op]) + b"\n" + json.dumps({
        "errCode": "SUCCESS", "errInfo": "ok", "status": "TRADE_SUCCESS",
        "merchantOrderId": "PT000120261122100000001", "totalAmount": 1250,
        "accessToken": "t", "expiresIn": "3600", "billStatus": "PAID",
        "billPayment": {"status": "TRADE_SUCCESS", "totalAmount": 1250}}).encode())
put("chinaums", "signed", b"\x01OPEN-BODY-SIG AppId=\"app0001\", Timestamp=\"20261122100000\", "
    b"Nonce=\"n\", Signature=\"AAAA\"\n{\"errCode\":\"SUCCESS\"}")

# upapi: selector, reply body (or notification query / Base64 ciphertext).
for op in range(6):
    put("upapi", f"reply-{op}", bytes([op]) + json.dumps({"resp": "00", "msg": "ok", "params": {
        "backendToken": "b", "expiresIn": "7200", "accessToken": "a", "openId": "o",
        "contractId": "CID9", "contractStatus": "1", "enable": "0", "mobile": "AAAA"}}).encode())
put("upapi", "notice", b"\x06appId=a5949221470c4059b9b0b45a90c81527&openId=o&contractId=CID9"
    b"&trid=t&operateTime=20261122100000&signature=AAAA")
put("upapi", "cipher", b"\x07" + base64.b64encode(b"\x00" * 16))


# Face module frames (frame.rs layout, CRC-16/CCITT-FALSE).
def crc16(b):
    c = 0xFFFF
    for x in b:
        c ^= x << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
    return c


def frame(ty, seq, payload):
    body = bytes([1, ty]) + struct.pack("<HH", seq, len(payload)) + payload
    return b"\xa5\x5a" + body + struct.pack("<H", crc16(body))


put("face_frame", "hello", b"\x07" + frame(0, 1, b'{"proto":1,"model":"F1","fw":"1.0"}')
    + b"noise" + frame(1, 1, b"") + frame(5, 2, b'{"rawdata":"abc"}'))

# Serial scanner: mode, chunk, gap, then what the scanner sends.
put("serial_scanner", "crlf", b"\x02\x04\x05" + b"6225123456789012345\r\n134567890123456789\r\n")
put("serial_scanner", "prefix-aim", b"\x16\x03\x01" + b"\x02]Q1134567890123456789\r")


# Evdev: chunk, then input_event records (timeval, type, code, value).
def ev(us, kind, code, value):
    return struct.pack("<qqHHi", us // 1_000_000, us % 1_000_000, kind, code, value)


keys = {"1": 2, "3": 4, "4": 5, "5": 6}
recs, t = b"", 1_000_000
for ch in "13451345":
    for v in (1, 0):
        recs += ev(t, 1, keys[ch], v) + ev(t, 0, 0, 0)
        t += 2000
recs += ev(t, 1, 28, 1) + ev(t, 0, 0, 0) + ev(t + 2000, 1, 28, 0)
put("evdev_scanner", "digits-enter", b"\x18" + recs)

# ECR bodies.
put("ecr_bodies", "payment", json.dumps({"order_id": "A-1", "amount": "12.34", "method": "code",
    "code": "134567890123456789", "goods_detail": [{"id": 1}]}))
put("ecr_bodies", "qr", json.dumps({"order_id": "A-2", "amount": "0.01", "method": "qr",
    "wallet": "alipay", "notify_url": "http://x/n"}))
put("ecr_bodies", "refund", json.dumps({"amount": "1.00", "refund_id": "R1"}))
put("ecr_bodies", "contract", json.dumps({"contract_id": "CID9", "amount": "5", "order_id": "K1"}))

# Configuration: the shipped files.
for p in [os.path.join(REPO, "packaging", "payterm.toml")] + files(os.path.join(REPO, "config"), ".toml"):
    put("config", os.path.basename(p), read(p))

total = sum(os.path.getsize(p) for p in files(CORPUS, ""))
print(f"seeds written under {CORPUS}: {total} bytes", file=sys.stderr)
