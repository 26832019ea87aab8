from concurrent.futures import ThreadPoolExecutor

pool = ThreadPoolExecutor()


def build_report(kind):
    return kind.upper()


async def report(kind):
    fut = pool.submit(build_report, kind)
    text = fut.result()
    title = pool.submit(build_report, "title").result(timeout=5)
    return {"title": pool.submit(str, title).result(3).strip(), "text": text}
