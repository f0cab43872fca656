// Every visible string, in Korean and English. Elements name their string with
// data-i18n (text), data-i18n-label (aria-label) or data-i18n-placeholder.
export const STRINGS = {
  en: {
    'site.title': 'Ballot ledger',
    'nav.label': 'Pages',
    'nav.receipt': 'Check my ballot',
    'nav.observer': 'Observe the chain',
    'nav.docs': 'API documentation',
    'lang.switch': '한국어',
    'skip': 'Skip to the main content',
    'receipt.heading': 'Check that your ballot was recorded',
    'receipt.intro': 'Paste the tracking code your voting app showed you. Your browser fetches the receipt and checks it itself: the inclusion proof against a checkpoint, and the checkpoint\'s signatures against the validators of the election\'s genesis.',
    'receipt.code': 'Tracking code',
    'receipt.code.help': '64 characters, 0-9 and a-f.',
    'receipt.check': 'Check',
    'genesis.heading': 'The election\'s genesis',
    'genesis.computed': 'Genesis hash computed by your browser',
    'genesis.published': 'Genesis hash published by the election commission (optional)',
    'genesis.published.help': 'Paste it from the commission\'s notice; your browser compares the two.',
    'genesis.match': 'The genesis hash matches the published one.',
    'genesis.mismatch': 'The genesis hash does NOT match the published one: do not trust this server.',
    'genesis.validators': 'Validators',
    'genesis.chain': 'Chain',
    'status.working': 'Checking…',
    'status.final': 'Recorded and final',
    'status.pending': 'Received, not final yet',
    'status.pending.help': 'The ballot is waiting to be put in a block. Check again in a few seconds.',
    'status.rejected': 'Refused by the chain',
    'status.notfound': 'No ballot with this tracking code is known',
    'status.failed': 'The receipt does NOT check out',
    'status.error': 'Could not reach the server',
    'failed.check': 'Failed check',
    'result.height': 'Block height',
    'result.time': 'Block time',
    'result.election': 'Election',
    'result.index': 'Position in the ballot log',
    'result.elapsed': 'Checked in',
    'check.code': 'The receipt is for the tracking code entered',
    'check.format': 'The tracking code is 64 hexadecimal characters',
    'check.found': 'The chain knows this tracking code',
    'check.genesis': 'The genesis the server sent hashes to what it claims',
    'check.published': 'The genesis hash is the one the election commission published',
    'check.chain': 'The receipt is for this chain',
    'check.quorum': 'More than 2/3 of the validators signed the checkpoint',
    'check.signature': 'Every validator signature on the checkpoint verifies',
    'check.certificate': 'The signatures are for this checkpoint',
    'check.inclusion': 'The inclusion proof leads to the checkpoint\'s log root',
    'check.encoding': 'The receipt is well formed',
    'check.block': 'The ballot\'s block is signed by a quorum',
    'check.consistency': 'The log extends the one saved last time',
    'check.ok': 'passed',
    'check.failed': 'FAILED',
    'checks.heading': 'Checks done by your browser',
    'observer.heading': 'Observe the chain',
    'observer.intro': 'Everything here is read from the public API; the checkpoint\'s signatures and its consistency with the one your browser saved last time are checked in your browser.',
    'observer.refresh': 'Refresh',
    'observer.chain': 'Chain',
    'observer.height': 'Height',
    'observer.checkpoint': 'Latest checkpoint',
    'observer.logsize': 'Ballots in the log',
    'observer.logroot': 'Log root',
    'observer.download': 'Download checkpoint',
    'observer.download.help': 'The file `ballotledger checkpoint compare` takes.',
    'observer.signed': 'Signatures checked',
    'observer.consistency': 'Since your last visit',
    'observer.consistency.first': 'First visit from this browser: the checkpoint is saved for next time.',
    'observer.consistency.ok': 'Consistent: the log at height {new} extends the one saved at height {old}.',
    'observer.consistency.bad': 'INCONSISTENT with the checkpoint saved at height {old}: the history was rewritten or forked.',
    'observer.consistency.other': 'The saved checkpoint belongs to another chain; it is replaced.',
    'observer.blocks': 'Recent blocks',
    'observer.block.height': 'Height',
    'observer.block.time': 'Time',
    'observer.block.proposer': 'Proposer',
    'observer.block.ballots': 'Ballots',
    'observer.block.signers': 'Signatures',
    'observer.block.hash': 'Block hash',
    'observer.validators': 'Validators',
    'observer.validator.name': 'Name',
    'observer.validator.key': 'Public key',
    'observer.validator.power': 'Power',
    'observer.validator.last': 'Last signed block',
    'observer.validator.none': 'none of the recent blocks',
    'observer.elections': 'Elections',
    'observer.election.id': 'Election',
    'observer.election.question': 'Question',
    'observer.election.phase': 'Phase',
    'observer.election.recorded': 'Ballots recorded',
    'observer.election.result': 'Result',
    'observer.election.noresult': 'not published yet',
    'phase.setup': 'setup',
    'phase.open': 'open',
    'phase.closed': 'closed',
    'phase.tallied': 'tallied',
    'footer': 'Nothing on this page is loaded from anywhere else; the checks run in your browser.',
  },
  ko: {
    'site.title': '투표 원장',
    'nav.label': '페이지',
    'nav.receipt': '내 투표 확인',
    'nav.observer': '체인 관찰',
    'nav.docs': 'API 문서',
    'lang.switch': 'English',
    'skip': '본문으로 건너뛰기',
    'receipt.heading': '내 투표가 기록되었는지 확인하기',
    'receipt.intro': '투표 앱이 보여 준 추적 코드를 붙여 넣으세요. 브라우저가 영수증을 가져와 직접 확인합니다: 체크포인트에 대한 포함 증명과, 선거 제네시스의 검증자들에 대한 체크포인트 서명.',
    'receipt.code': '추적 코드',
    'receipt.code.help': '0-9와 a-f로 된 64자.',
    'receipt.check': '확인',
    'genesis.heading': '선거의 제네시스',
    'genesis.computed': '브라우저가 계산한 제네시스 해시',
    'genesis.published': '선거관리위원회가 공표한 제네시스 해시 (선택)',
    'genesis.published.help': '위원회 공고에서 붙여 넣으면 브라우저가 두 값을 비교합니다.',
    'genesis.match': '제네시스 해시가 공표된 값과 일치합니다.',
    'genesis.mismatch': '제네시스 해시가 공표된 값과 다릅니다: 이 서버를 믿지 마세요.',
    'genesis.validators': '검증자',
    'genesis.chain': '체인',
    'status.working': '확인 중…',
    'status.final': '기록되어 확정됨',
    'status.pending': '접수됨, 아직 확정 전',
    'status.pending.help': '투표가 블록에 담기기를 기다리고 있습니다. 몇 초 뒤 다시 확인하세요.',
    'status.rejected': '체인이 거부함',
    'status.notfound': '이 추적 코드의 투표를 찾을 수 없습니다',
    'status.failed': '영수증 검증에 실패했습니다',
    'status.error': '서버에 연결할 수 없습니다',
    'failed.check': '실패한 검사',
    'result.height': '블록 높이',
    'result.time': '블록 시각',
    'result.election': '선거',
    'result.index': '투표 로그의 위치',
    'result.elapsed': '확인 시간',
    'check.code': '영수증이 입력한 추적 코드의 것입니다',
    'check.format': '추적 코드가 16진수 64자입니다',
    'check.found': '체인이 이 추적 코드를 알고 있습니다',
    'check.genesis': '서버가 보낸 제네시스의 해시가 주장과 같습니다',
    'check.published': '제네시스 해시가 선거관리위원회가 공표한 값입니다',
    'check.chain': '영수증이 이 체인의 것입니다',
    'check.quorum': '검증자의 2/3 넘게 체크포인트에 서명했습니다',
    'check.signature': '체크포인트의 모든 검증자 서명이 유효합니다',
    'check.certificate': '서명이 이 체크포인트에 대한 것입니다',
    'check.inclusion': '포함 증명이 체크포인트의 로그 루트로 이어집니다',
    'check.encoding': '영수증의 형식이 올바릅니다',
    'check.block': '투표가 담긴 블록에 정족수의 서명이 있습니다',
    'check.consistency': '로그가 지난번 저장한 로그를 이어 갑니다',
    'check.ok': '통과',
    'check.failed': '실패',
    'checks.heading': '브라우저가 한 검사',
    'observer.heading': '체인 관찰',
    'observer.intro': '여기의 모든 내용은 공개 API에서 읽습니다. 체크포인트의 서명과, 지난번 이 브라우저가 저장한 체크포인트와의 일관성은 브라우저에서 확인합니다.',
    'observer.refresh': '새로 고침',
    'observer.chain': '체인',
    'observer.height': '높이',
    'observer.checkpoint': '최신 체크포인트',
    'observer.logsize': '로그의 투표 수',
    'observer.logroot': '로그 루트',
    'observer.download': '체크포인트 내려받기',
    'observer.download.help': '`ballotledger checkpoint compare`가 받는 파일입니다.',
    'observer.signed': '서명 확인',
    'observer.consistency': '지난 방문 이후',
    'observer.consistency.first': '이 브라우저의 첫 방문입니다: 다음을 위해 체크포인트를 저장합니다.',
    'observer.consistency.ok': '일관됨: 높이 {new}의 로그가 높이 {old}에서 저장한 로그를 이어 갑니다.',
    'observer.consistency.bad': '높이 {old}에서 저장한 체크포인트와 일관되지 않습니다: 기록이 고쳐졌거나 갈라졌습니다.',
    'observer.consistency.other': '저장된 체크포인트가 다른 체인의 것이라 바꿉니다.',
    'observer.blocks': '최근 블록',
    'observer.block.height': '높이',
    'observer.block.time': '시각',
    'observer.block.proposer': '제안자',
    'observer.block.ballots': '투표',
    'observer.block.signers': '서명',
    'observer.block.hash': '블록 해시',
    'observer.validators': '검증자',
    'observer.validator.name': '이름',
    'observer.validator.key': '공개 키',
    'observer.validator.power': '투표권',
    'observer.validator.last': '마지막으로 서명한 블록',
    'observer.validator.none': '최근 블록에 없음',
    'observer.elections': '선거',
    'observer.election.id': '선거',
    'observer.election.question': '질문',
    'observer.election.phase': '단계',
    'observer.election.recorded': '기록된 투표',
    'observer.election.result': '결과',
    'observer.election.noresult': '아직 공표되지 않음',
    'phase.setup': '준비',
    'phase.open': '진행 중',
    'phase.closed': '마감',
    'phase.tallied': '개표 완료',
    'footer': '이 페이지는 다른 곳에서 아무것도 불러오지 않으며, 검사는 브라우저에서 실행됩니다.',
  },
};

const STORAGE_KEY = 'ballot-ledger.lang';

export function currentLang() {
  const saved = safeStorage(() => localStorage.getItem(STORAGE_KEY));
  if (saved === 'ko' || saved === 'en') return saved;
  return (navigator.language || '').toLowerCase().startsWith('ko') ? 'ko' : 'en';
}

export function t(key, vars) {
  const lang = document.documentElement.lang === 'ko' ? 'ko' : 'en';
  let s = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  for (const [k, v] of Object.entries(vars || {})) s = s.replace(`{${k}}`, String(v));
  return s;
}

/** Render every marked element in `lang`. */
export function applyLang(lang) {
  document.documentElement.lang = lang;
  safeStorage(() => localStorage.setItem(STORAGE_KEY, lang));
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n, parseVars(el));
  for (const el of document.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel));
  for (const el of document.querySelectorAll('[data-i18n-placeholder]')) el.setAttribute('placeholder', t(el.dataset.i18nPlaceholder));
  document.title = t(document.body.dataset.titleKey || 'site.title');
  const other = document.getElementById('lang');
  if (other) other.lang = lang === 'ko' ? 'en' : 'ko'; // the button names the other language in that language
}

function parseVars(el) {
  return el.dataset.i18nVars ? JSON.parse(el.dataset.i18nVars) : undefined;
}

export function safeStorage(fn) {
  try {
    return fn();
  } catch {
    return null; // storage disabled (private mode, policy): the page works without it
  }
}
