"""Placeholder replaced by the WebSocket issue's consumer."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class RecognizeConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        await self.close(code=4000)
