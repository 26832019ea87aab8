# -*- coding: utf-8 -*-
"""Odd formatting and comments around every site must survive."""
import asyncio


async def   spaced( x ):
    # a comment before the sleep
    await asyncio.sleep(  x  )     # trailing comment after the sleep
    ( await asyncio.sleep(
        x + 1  # inner comment
    ) )
    # comment inside the block
    y = await get_loop( ).run_in_executor( None , len ,  "abc" )   # keep me

    z = [ y ]  ;  print( z )   # noqa: E702 (odd on purpose)
    return   y


def get_loop( ):
    from asyncio import get_running_loop
    return get_running_loop( )
