# -*- coding: utf-8 -*-
"""Odd formatting and comments around every site must survive."""
import asyncio
import time   # two spaces before this comment
from concurrent.futures import (
    ThreadPoolExecutor,  # pools
)


async def   spaced( x ):
    # a comment before the sleep
    await asyncio.sleep(  x  )     # trailing comment after the sleep
    ( await asyncio.sleep(
        x + 1  # inner comment
    ) )
    ex = ThreadPoolExecutor(  max_workers = 1 )   # odd spacing
    pending = set()
    try:
        # comment inside the block
        fut = get_loop( ).run_in_executor( ex , len ,  "abc" )
        pending.add(fut)
        y = await fut   # keep me
        pending.discard(fut)

        z = [ y ]  ;  print( z )
    finally:
        for fut in pending:
            fut.cancel()
        ex.shutdown(wait=False, cancel_futures=True)
    return   y
