-- wrk script for the echo workload: POST a 1 KiB body to the URL's path.
-- wrk adds Content-Length itself.
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
