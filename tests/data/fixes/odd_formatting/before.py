# -*- coding: utf-8 -*-
"""Odd formatting and comments around every site must survive."""
import time   # two spaces before this comment
from concurrent.futures import (
    ThreadPoolExecutor,  # pools
)


async def   spaced( x ):
    # a comment before the sleep
    time.sleep(  x  )     # trailing comment after the sleep
    ( time.sleep(
        x + 1  # inner comment
    ) )
    with ThreadPoolExecutor(  max_workers = 1 )   as   ex :   # odd spacing
        # comment inside the block
        y = await get_loop( ).run_in_executor( ex , len ,  "abc" )   # keep me

        z = [ y ]  ;  print( z )   # noqa: E702 (odd on purpose)
    return   y


def get_loop( ):
    from asyncio import get_running_loop
    return get_running_loop( )
