# -*- coding: utf-8 -*-
"""Odd formatting and comments around every site must survive."""
import asyncio
import time   # two spaces before this comment


async def   spaced( x ):
    # a comment before the sleep
    await asyncio.sleep(  x  )     # trailing comment after the sleep
    ( await asyncio.sleep(
        x + 1  # inner comment
    ) )
    # comment inside the block
    y = await get_loop( ).run_in_executor( None , len ,  "abc" )   # keep me

    z = [ y ]  ;  print( z )
    return   y
