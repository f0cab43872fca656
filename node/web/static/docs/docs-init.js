// Swagger UI from the gateway's own files: /docs works without internet.
window.ui = SwaggerUIBundle({ url: 'openapi.json', dom_id: '#swagger-ui', deepLinking: true });
