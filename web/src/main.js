// The page's entry point: language, then the page's own behaviour.
import { applyLang, currentLang } from './i18n.js';
import { startReceiptPage } from './receipt.js';
import { startObserverPage } from './observer.js';

function start() {
  applyLang(currentLang());
  document.getElementById('lang').addEventListener('click', () => {
    applyLang(document.documentElement.lang === 'ko' ? 'en' : 'ko');
  });
  if (document.body.dataset.page === 'receipt') startReceiptPage();
  if (document.body.dataset.page === 'observer') startObserverPage();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
