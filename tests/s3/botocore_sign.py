#!/usr/bin/python3
"""Signs requests with botocore (python3-botocore from Debian), an
independent SigV4 implementation, for tests/store/sigv4_test.cpp.

stdin: one request per line, tab-separated fields:
  method, host, key (raw, not encoded), query ("k=v" pairs joined by \x1f,
  raw), headers ("name:value" pairs joined by \x1f), payload hash, date,
  access key id, secret key, region
stdout: per request, the encoded path and the signature, tab-separated.
"""
import sys

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode

for line in sys.stdin.read().splitlines():
    (method, host, key, query, headers, payload, date, key_id, secret,
     region) = line.split('\t')
    path = '/' + percent_encode(key, safe='/~')
    params = {}
    for pair in filter(None, query.split('\x1f')):
        name, _, value = pair.partition('=')
        params[name] = value
    request = AWSRequest(method=method, url='http://' + host + path,
                         params=params)
    for pair in filter(None, headers.split('\x1f')):
        name, _, value = pair.partition(':')
        request.headers[name] = value
    request.headers['Host'] = host
    request.headers['X-Amz-Date'] = date
    request.headers['X-Amz-Content-SHA256'] = payload
    request.context['timestamp'] = date
    auth = S3SigV4Auth(Credentials(key_id, secret), 's3', region)
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    print(path + '\t' + signature)
