# ruff: noqa
"""HD203: sync clients of databases, caches, brokers and mail servers in async code."""

import asyncio
import smtplib
import socket
from email.message import EmailMessage

import aiokafka
import kafka
import motor.motor_asyncio
import pika
import psycopg
import psycopg2
import psycopg2.extras
import psycopg2.pool
import pymongo
import pymysql
import redis
import redis.asyncio
from confluent_kafka import Consumer
from psycopg_pool import ConnectionPool
from pymongo.collection import Collection

cache = redis.Redis.from_url("redis://cache")  # makes a client: connects nothing yet
mongo = pymongo.MongoClient("mongodb://db")
pg_pool = psycopg2.pool.ThreadedConnectionPool(1, 5, "dbname=app")
pool3 = ConnectionPool("dbname=app")
acache = redis.asyncio.Redis()


async def redis_calls() -> None:
    redis.Redis()  # no connection until the first command
    cache.hgetall("k")  # error: HD203
    pipe = cache.pipeline()  # buffers commands in memory
    pipe.set("a", 1)
    pipe.execute()  # error: HD203
    lock = cache.lock("name")
    lock.acquire()  # error: HD203
    ps = cache.pubsub()
    ps.subscribe("ch")  # error: HD203
    ps.get_message()  # error: HD203
    await acache.get("k")
    acache.pipeline()


async def mongo_calls(users: Collection) -> None:
    db = mongo["app"]
    db["users"].insert_one({})  # error: HD203
    mongo.get_database("app").get_collection("users").count_documents({})  # error: HD203
    users.find_one({})  # error: HD203
    users.update_many({}, {"$set": {"a": 1}})  # error: HD203
    users.find({}).sort("a").limit(5).to_list()  # error: HD203
    users.find({})  # a lazy cursor: no I/O yet
    mongo.list_database_names()  # error: HD203
    amongo = motor.motor_asyncio.AsyncIOMotorClient()
    await amongo["app"]["users"].find_one({})
    await asyncio.to_thread(users.find_one, {})


async def postgres() -> None:
    conn = psycopg.connect("dbname=app")  # error: HD203
    conn.execute("SELECT 1")  # error: HD203
    cur = conn.cursor()
    cur.execute("SELECT 1")  # error: HD203
    cur.fetchall()  # a client-side cursor has the rows already
    conn.commit()  # error: HD203
    with pool3.connection() as pooled:  # error: HD203
        pass
    aconn = await psycopg.AsyncConnection.connect("dbname=app")
    await aconn.execute("SELECT 1")
    old = pg_pool.getconn()  # error: HD203
    old_cur = old.cursor()
    psycopg2.extras.execute_values(old_cur, "INSERT", [])  # error: HD203
    old.rollback()  # error: HD203
    pg_pool.putconn(old)


async def mysql() -> None:
    conn = pymysql.connect(host="db")  # error: HD203
    with conn.cursor() as cur:
        cur.execute("SELECT 1")  # error: HD203
    conn.commit()  # error: HD203


async def brokers() -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters("mq"))  # error: HD203
    channel = connection.channel()  # error: HD203
    channel.basic_publish(exchange="", routing_key="q", body=b"")  # error: HD203
    connection.add_callback_threadsafe(print)  # thread-safe by design: returns at once
    producer = kafka.KafkaProducer(bootstrap_servers="k")  # error: HD203
    producer.send("topic", b"v").get(timeout=10)  # error: HD203
    producer.flush()  # error: HD203
    consumer = Consumer({"group.id": "g"})
    consumer.poll(1.0)  # error: HD203
    aproducer = aiokafka.AIOKafkaProducer(bootstrap_servers="k")
    await aproducer.start()
    await aproducer.send_and_wait("topic", b"v")


async def mail(msg: EmailMessage) -> None:
    with smtplib.SMTP("mail", 587) as smtp:  # error: HD203
        smtp.starttls()  # error: HD203
        smtp.login("u", "p")  # error: HD203
        smtp.send_message(msg)  # error: HD203
    smtp2 = smtplib.SMTP_SSL("mail")
    smtp2.set_debuglevel(1)
    smtp2.sendmail("a", ["b"], "x")  # error: HD203


async def sockets(given: socket.socket) -> None:
    sock = socket.socket()
    sock.connect_ex(("h", 1))  # error: HD203
    given.connect(("h", 1))  # a socket handed in may be non-blocking (anyio's are)
