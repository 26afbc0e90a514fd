"""Provider webhooks (SPEC §7.5): SendGrid, Twilio, WhatsApp Cloud and Zenvia status events
become events on the input topics.

``signatures`` checks each provider's own signature, ``adapters`` maps each payload to our
events (pure functions, tested with the providers' documented examples), ``secrets`` reads
``EM_WEBHOOK_SECRETS_FILE``, ``routes`` ties them to the API.
"""
