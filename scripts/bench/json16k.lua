-- wrk script for the json16k workload: a GET that accepts gzip, as a
-- client that sent "Accept-Encoding: gzip" would.
wrk.headers["Accept-Encoding"] = "gzip"
