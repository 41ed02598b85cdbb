#!/usr/bin/python3
"""The baseline of objstore-bench's oss_gbps: boto3 (python3-boto3 from
Debian, multipart above 8 MiB, 4 parts at once) putting and getting the
same number of bytes on the same S3 test server, in the same run.

usage: boto3_bench.py ENDPOINT ACCESS_KEY SECRET_KEY BUCKET SIZE_MIB REPS
prints: {"boto3_put_gbps": x, "boto3_get_gbps": y} (medians)
"""
import io
import json
import statistics
import sys
import time

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

endpoint, key_id, secret, bucket, size_mib, reps = sys.argv[1:7]
client = boto3.client(
    's3', endpoint_url=endpoint, aws_access_key_id=key_id,
    aws_secret_access_key=secret, region_name='us-east-1',
    config=Config(s3={'addressing_style': 'path'}))
size = int(size_mib) << 20
data = bytes(size)
cfg = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20,
                     max_concurrency=4)
puts, gets = [], []
for _ in range(int(reps)):
    start = time.perf_counter()
    client.upload_fileobj(io.BytesIO(data), bucket, 'boto3-bench', Config=cfg)
    puts.append(time.perf_counter() - start)
    out = io.BytesIO()
    start = time.perf_counter()
    client.download_fileobj(bucket, 'boto3-bench', out, Config=cfg)
    gets.append(time.perf_counter() - start)
    assert out.getbuffer().nbytes == size
print(json.dumps({'boto3_put_gbps': size / 1e9 / statistics.median(puts),
                  'boto3_get_gbps': size / 1e9 / statistics.median(gets)}))
